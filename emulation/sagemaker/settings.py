"""Settings of the local SageMaker service (environment prefix POSTWERK_SAGEMAKER_)."""

import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_SAGEMAKER_", frozen=True)

    host: str = "127.0.0.1"
    port: PositiveInt = 4567
    state_dir: Path = Path(".postwerk/sagemaker")  # SQLite, job folders, model copies
    max_training_jobs: PositiveInt = 1  # more are queued (InProgress/Starting)
    # How jobs and replicas run: processes of `python` (embedded backend) or Docker
    # containers of the job's image (compose backend; see containers.py).
    containers: Literal["processes", "docker"] = "processes"
    python: str = sys.executable  # processes: the interpreter that runs `python -m model`
    docker_network: str = ""  # docker: replicas join it and are addressed by name
    docker_state_volume: str = ""  # docker: the named volume mounted at state_dir
    gpus: Literal["auto", "all", "none"] = "auto"  # docker: auto = when NVIDIA's runtime is there
    region: str = Field(
        "eu-central-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    account_id: str = "000000000000"
    replica_start_timeout: float = 300.0  # seconds from start to the first /ping 200
    invocation_timeout: float = 60.0  # AWS's limit for InvokeEndpoint
    # A serverless variant without ProvisionedConcurrency stops its replica after this long
    # without a request; the next request starts one and waits for it (the cold start).
    serverless_idle_seconds: float = Field(300.0, ge=0)
    # Training: SIGTERM to SIGKILL on a stop, a spot interruption, MaxRuntime/MaxWait (AWS: 120)
    stop_grace_seconds: float = 120.0
    # Spot jobs: when they are interrupted, unless their tag says (spot.py; "" = never)
    spot_interruptions: str = ""
    # How often a training job's checkpoint folder is synced to CheckpointConfig.S3Uri
    checkpoint_sync_seconds: float = 2.0
