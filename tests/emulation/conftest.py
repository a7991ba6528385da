"""The local SageMaker service for tests: one subprocess for the session, on MiniStack."""

import io
import json
import subprocess
import tarfile
from pathlib import Path

import boto3
import pytest

from emulation.sagemaker import launcher
from model.contract import METRIC_DEFINITIONS
from tests.jobs import free_port, make_emails

BUCKET = "postwerk-tests"
ROLE = "arn:aws:iam::000000000000:role/postwerk"
FAST_WAITER = {"Delay": 1, "MaxAttempts": 300}


@pytest.fixture(scope="session")
def sagemaker_service(ministack, tmp_path_factory):
    """`python -m emulation.sagemaker` with its jobs and endpoints on the MiniStack backend."""
    state_dir = tmp_path_factory.mktemp("sagemaker-state")
    process, url = start_service(ministack, state_dir, POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS="2")
    yield process, url, state_dir
    process.terminate()
    process.wait(60)


def start_service(ministack, state_dir: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    return launcher.start_service(
        state_dir, free_port(), ministack.client_environment(), **settings
    )


@pytest.fixture
def sagemaker(aws, sagemaker_service, monkeypatch):
    """boto3 clients as a user gets them: plain clients, endpoints from the environment."""
    _, url, _ = sagemaker_service
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime"), s3


def put_jsonl(s3, key: str, rows: list[dict]) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(r) + "\n" for r in rows))
    return f"s3://{BUCKET}/{key}"


def training_request(name: str, s3, hyperparameters: dict, **overrides) -> dict:
    """CreateTrainingJob's arguments for the tiny task, its channels uploaded to S3."""
    channels = {"train": make_emails(30, 1), "validation": make_emails(9, 2)}
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "postwerk-model:latest",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": ROLE,
        "HyperParameters": {k: str(v) for k, v in hyperparameters.items()},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "ContentType": "application/jsonlines",
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": put_jsonl(s3, f"{name}/data/{channel}/emails.jsonl", rows),
                }},
            }
            for channel, rows in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/{name}/artifacts"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    } | overrides  # fmt: skip


def model_archive(model_dir: Path) -> bytes:
    """model.tar.gz as a training job writes it: the model folder's files at the root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()
