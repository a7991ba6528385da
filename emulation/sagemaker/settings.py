"""Settings of the local SageMaker service (environment prefix POSTWERK_SAGEMAKER_)."""

import sys
from pathlib import Path

from pydantic import AliasChoices, Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_SAGEMAKER_", frozen=True)

    host: str = "127.0.0.1"
    port: PositiveInt = 4567
    state_dir: Path = Path(".postwerk/sagemaker")  # SQLite, job folders, model copies
    max_training_jobs: PositiveInt = 1  # more are queued (InProgress/Starting)
    python: str = sys.executable  # the interpreter that runs `python -m model`
    region: str = Field(
        "eu-central-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    account_id: str = "000000000000"
    replica_start_timeout: float = 300.0  # seconds from start to the first /ping 200
    invocation_timeout: float = 60.0  # AWS's limit for InvokeEndpoint
