"""Plugin: the local SageMaker service for tests (one subprocess for the session, on
MiniStack), and the requests tests make to it: training jobs, models, endpoints, transforms."""

import contextlib
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import botocore.session
import httpx
import psutil
import pytest
from botocore.exceptions import WaiterError
from botocore.validate import ParamValidator

import postwerk.sagemaker
from emulation.processes import free_port
from emulation.sagemaker import launcher
from model.contract import METRIC_DEFINITIONS
from tests.support.jobs import make_emails
from tests.support.tiny_model import tiny_hyperparameters

BUCKET = "postwerk-tests"
ROLE = "arn:aws:iam::000000000000:role/postwerk"
FAST_WAITER = {"Delay": 1, "MaxAttempts": 300}
PAYLOAD = json.dumps({"inputs": ["my invoice is wrong", "thanks for the great service"]})
MODEL = botocore.session.get_session().get_service_model("sagemaker")
SERVERLESS_IDLE_SECONDS = 5


@pytest.fixture(scope="session")
def sagemaker_service(ministack, tmp_path_factory):
    """`python -m emulation.sagemaker` with its jobs and endpoints on the MiniStack backend
    (a serverless variant idle for SERVERLESS_IDLE_SECONDS stops its replica)."""
    state_dir = tmp_path_factory.mktemp("sagemaker-state")
    process, url = start_service(
        ministack,
        state_dir,
        POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS="2",
        POSTWERK_SAGEMAKER_SERVERLESS_IDLE_SECONDS=str(SERVERLESS_IDLE_SECONDS),
    )
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


def put_lines(s3, key: str, lines: list[str]) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(line + "\n" for line in lines))


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


def wait_for_training_job(sm, name: str) -> dict:
    """The boto3 waiter; it raises on Failed, which some tests expect."""
    with contextlib.suppress(WaiterError):
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=name, WaiterConfig=FAST_WAITER
        )
    return sm.describe_training_job(TrainingJobName=name)


def model_archive(model_dir: Path) -> bytes:
    """model.tar.gz as a training job writes it: the model folder's files at the root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def deploy_model(sm, s3, name: str, archive: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=archive)
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "postwerk-model:latest",
            "ModelDataUrl": f"s3://{BUCKET}/{name}/model.tar.gz",
        },
    )


def create_config(sm, name: str, model: str, instances: int = 1) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "primary", "ModelName": model,
                             "InitialInstanceCount": instances,
                             "InstanceType": "ml.m5.large"}],
    )  # fmt: skip


def create_serverless_config(sm, name: str, model: str, **serverless: int) -> None:
    """One serverless variant `primary`: 2048 MB and `serverless` (MaxConcurrency ...)."""
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "primary", "ModelName": model,
                             "ServerlessConfig": {"MemorySizeInMB": 2048} | serverless}],
    )  # fmt: skip


def replica_processes(sagemaker_service, endpoint: str) -> list[psutil.Process]:
    """The serving processes of the endpoint's replicas (children of the service)."""
    service, _, _ = sagemaker_service
    found = []
    for child in psutil.Process(service.pid).children():
        with contextlib.suppress(psutil.Error):
            if "serve" in child.cmdline() and f"/replicas/{endpoint}-" in child.environ().get(
                "SAGEMAKER_BASE_DIR", ""
            ):
                found.append(child)
    return found


def wait_in_service(sm, name: str) -> dict:
    with contextlib.suppress(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return sm.describe_endpoint(EndpointName=name)


def invoke(runtime, name: str) -> dict:
    answer = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=PAYLOAD
    )
    assert answer["InvokedProductionVariant"] == "primary"
    return json.loads(answer["Body"].read())


@contextmanager
def endpoint_serving(
    sagemaker, trained_job: Path, endpoint_name: str, serverless: dict | None = None
) -> Iterator[None]:
    """The trained job's model behind a local SageMaker endpoint (serverless: a serverless
    variant with this MaxConcurrency ...), deleted afterwards."""
    sm, _, s3 = sagemaker
    name = f"{endpoint_name}-{uuid.uuid4().hex[:8]}"  # the service outlives a backend reset
    deploy_model(sm, s3, name, model_archive(trained_job / "model"))
    if serverless:
        create_serverless_config(sm, name, name, **serverless)
    else:
        create_config(sm, name, name)
    sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=name)
    assert wait_in_service(sm, endpoint_name)["EndpointStatus"] == "InService"
    yield
    sm.delete_endpoint(EndpointName=endpoint_name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=endpoint_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )


EMAILS = [
    {"id": "m-1", "subject": "Invoice wrong", "body": "my invoice is wrong", "folder": "x"},
    {"id": "m-2", "subject": "Thanks", "body": "thanks for the great service", "folder": "y"},
    {"id": "m-3", "subject": "Cancel", "body": "please cancel my contract", "folder": "z"},
]


def transform_request(name: str, model: str, prefix: str, **overrides) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/{prefix}/"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/{name}/out",
                            "Accept": "application/jsonlines", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "DataProcessing": {"InputFilter": "$['id','subject','body']", "JoinSource": "Input",
                           "OutputFilter": "$['id','SageMakerOutput']"},
    } | overrides  # fmt: skip


def call(url: str, operation: str, **request) -> dict:
    """The service's raw JSON answer (boto3 drops members it does not know)."""
    answer = httpx.post(
        url,
        json=request,
        headers={"X-Amz-Target": f"SageMaker.{operation}"},
        timeout=30,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def audit(url: str, operation: str, **request) -> dict:
    """The answer, once botocore's output shape for the operation accepts it."""
    document = call(url, operation, **request)
    shape = MODEL.operation_model(operation).output_shape
    report = ParamValidator().validate(document, shape)
    assert not report.has_errors(), f"{operation}: {report.generate_report()}"
    return document


# Tuning: learning rates whose validation loss after 4 epochs is ~0.7 and ~1.1.
GOOD, HOPELESS = "0.02", "0.0000001"


def tuning_request(name: str, s3, tiny_bert, config: dict, epochs: int) -> dict:
    """A tuning job of the tiny model over GOOD and HOPELESS learning rates."""
    static = tiny_hyperparameters(tiny_bert, epochs=epochs)
    static.pop("learning_rate")
    channels = {"train": make_emails(30, 1), "validation": make_emails(15, 2)}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {
                "Type": "Minimize", "MetricName": "validation_loss",
            },
            "ParameterRanges": {"CategoricalParameterRanges": [
                {"Name": "learning_rate", "Values": [GOOD, HOPELESS]},
            ]},
            **config,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {k: str(v) for k, v in static.items()},
            "AlgorithmSpecification": {
                "TrainingImage": "postwerk-model:latest", "TrainingInputMode": "File",
                "MetricDefinitions": METRIC_DEFINITIONS,
            },
            "RoleArn": ROLE,
            "InputDataConfig": [
                {"ChannelName": channel, "ContentType": "application/jsonlines",
                 "DataSource": {"S3DataSource": {
                     "S3DataType": "S3Prefix",
                     "S3Uri": put_jsonl(s3, f"{name}/{channel}/emails.jsonl", rows)}}}
                for channel, rows in channels.items()
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/{name}/artifacts"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }  # fmt: skip


def wait_for_tuning_job(name: str) -> dict:
    """The tuning job once it has finished, waited for as `postwerk tune` waits (botocore
    has no waiter for tuning jobs), every half second."""
    return postwerk.sagemaker.wait_for_tuning_job(name, lambda job: None, poll_seconds=0.5)


def tuning_trials(sm, name: str) -> list[dict]:
    return sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending"
    )["TrainingJobSummaries"]
