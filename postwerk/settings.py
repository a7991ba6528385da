"""Settings of the `postwerk` command (environment prefix POSTWERK_).

AWS endpoints, region and credentials come from the standard AWS variables and config
(`eval "$(postwerk env)"` sets them for the local stack); these are postwerk's own.
"""

from pydantic_settings import BaseSettings, SettingsConfigDict


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    bucket: str = "postwerk-artifacts"  # training data and models; created when missing
    role_arn: str = "arn:aws:iam::000000000000:role/postwerk-sagemaker"  # AWS: a real role
    training_image: str = "postwerk-model:latest"  # AWS: the ECR image of model/Dockerfile
    serving_image: str = "postwerk-model:latest"
    training_instance_type: str = "ml.g4dn.xlarge"
    serving_instance_type: str = "ml.m5.large"
    max_runtime_seconds: int = 24 * 3600
