"""Settings of the `postwerk` command (environment prefix POSTWERK_).

AWS endpoints, region and credentials come from the standard AWS variables and config
(`eval "$(postwerk env)"` sets them for the local stack); these are postwerk's own.
"""

from pathlib import Path
from typing import Annotated

import typer
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class CliSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    stack_name: str = "postwerk"
    endpoint_name: str = "postwerk-emails"
    # Training data, models, the functions' zip; created when missing. Empty: a name that is
    # unique on AWS, postwerk-artifacts-<account>-<region>.
    bucket: str = ""
    review_token: str = ""  # the review API's bearer token; required on AWS
    # Replies go out from it; empty: the local stack's support@postwerk.localhost, none on AWS.
    support_address: str = ""
    routing_table: Path | None = None  # a RoutingTable JSON file; none: the template's default
    state_dir: Path = REPO_ROOT / ".postwerk"  # the local AWS's state, logs, build folder
    aws_port: int = 4566  # the local AWS (embedded backend)
    sagemaker_port: int = 4567  # the local SageMaker service
    smtp_port: int = 2525  # the local SES receiving (SMTP)
    role_arn: str = "arn:aws:iam::000000000000:role/postwerk-sagemaker"  # AWS: a real role
    training_image: str = "postwerk-model:latest"  # AWS: the ECR image of model/Dockerfile
    serving_image: str = "postwerk-model:latest"
    training_instance_type: str = "ml.g4dn.xlarge"
    serving_instance_type: str = "ml.m5.large"
    max_runtime_seconds: int = 24 * 3600
    # Managed spot training for `train` and `tune` on AWS (not on the local stack unless
    # --spot): checkpoints to s3://<bucket>/checkpoints/<job>/. False: on demand everywhere.
    spot: bool = True
    max_wait_seconds: int = 0  # spot: MaxWaitTimeInSeconds; 0 = twice max_runtime_seconds
    # AWS: how often the mailbox door fetches (an EventBridge schedule expression such as
    # rate(1 minute)); empty: no door on AWS. Locally the door runs with `make up`.
    mailbox_schedule: str = ""


# Options several commands share; None means the setting above (one source of defaults).
EndpointOption = Annotated[
    str | None,
    typer.Option("--endpoint", help="the endpoint (default: POSTWERK_ENDPOINT_NAME)"),
]
InstancesOption = Annotated[int, typer.Option(min=1, help="replicas")]
ServerlessOption = Annotated[
    bool, typer.Option(help="a serverless endpoint: no replica while idle, cold starts")
]
MemoryOption = Annotated[
    int, typer.Option("--memory", min=1024, max=6144, help="serverless: MB, a multiple of 1024")
]
MaxConcurrencyOption = Annotated[
    int, typer.Option(min=1, max=200, help="serverless: requests at once (more are throttled)")
]
SERVERLESS_MEMORY_MB = 2048  # the serving container's RSS is 543 MB (docs/benchmarks.md)
SERVERLESS_MAX_CONCURRENCY = 5
