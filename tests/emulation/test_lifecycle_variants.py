"""deploy-model, promote and rollback (the CLI and services/lifecycle.py, as the monitor
calls it) on a serverless endpoint and on a two-variant (A/B) endpoint: a new model takes
every variant over, and the endpoint keeps its shape."""

import contextlib
import uuid

import pytest
from botocore.exceptions import WaiterError
from typer.testing import CliRunner

from postwerk.cli import app
from services import lifecycle, registry
from tests.support.sagemaker import (
    FAST_WAITER,
    ROLE,
    invoke,
    training_request,
    wait_in_service,
)
from tests.support.tiny_model import tiny_hyperparameters

pytestmark = pytest.mark.long  # make test-long: minutes of jobs and endpoints

runner = CliRunner()


def trained_jobs(sm, s3, tiny_bert) -> tuple[str, str]:
    """Two completed training jobs of the tiny model (their S3 objects last one test)."""
    suffix = uuid.uuid4().hex[:6]
    jobs = (f"first-{suffix}", f"second-{suffix}")
    for job in jobs:
        sm.create_training_job(
            **training_request(job, s3, tiny_hyperparameters(tiny_bert, epochs=2))
        )
    for job in jobs:
        with contextlib.suppress(WaiterError):
            sm.get_waiter("training_job_completed_or_stopped").wait(
                TrainingJobName=job, WaiterConfig=FAST_WAITER
            )
        status = sm.describe_training_job(TrainingJobName=job)
        assert status["TrainingJobStatus"] == "Completed", status.get("FailureReason")
    return jobs


def registry_bucket(s3, monkeypatch, name: str) -> str:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    monkeypatch.setenv("POSTWERK_BUCKET", name)
    return name


def variants_of(sm, endpoint: str) -> list[dict]:
    config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    return sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]


def serves(sm, endpoint: str, job: str) -> bool:
    """Every variant serves a model made for the job (lifecycle names it job-<time>)."""
    return all(v["ModelName"].startswith(f"{job}-") for v in variants_of(sm, endpoint))


def test_a_serverless_endpoint_stays_serverless(sagemaker, tiny_bert, monkeypatch):
    sm, runtime, s3 = sagemaker
    bucket = registry_bucket(s3, monkeypatch, "postwerk-serverless-lifecycle")
    first, second = trained_jobs(sm, s3, tiny_bert)
    serverless = {"MemorySizeInMB": 2048, "MaxConcurrency": 3}

    deployed = runner.invoke(app, ["deploy-model", first, "--endpoint", "lean",
                                   "--serverless", "--max-concurrency", "3"])  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    assert "serverless 2048 MB, 3 at once" in " ".join(deployed.output.split())
    [variant] = variants_of(sm, "lean")
    assert variant["ServerlessConfig"] == serverless and "InstanceType" not in variant
    assert invoke(runtime, "lean")["predictions"]

    promoted = runner.invoke(app, ["promote", second, "--endpoint", "lean"])
    assert promoted.exit_code == 0, promoted.output
    [variant] = variants_of(sm, "lean")
    assert variant["ServerlessConfig"] == serverless and serves(sm, "lean", second)

    rolled_back = runner.invoke(app, ["rollback", "--endpoint", "lean"])
    assert rolled_back.exit_code == 0, rolled_back.output
    [variant] = variants_of(sm, "lean")
    assert variant["ServerlessConfig"] == serverless and serves(sm, "lean", first)
    assert registry.champion(bucket).job == first

    # the monitor's promotion: the endpoint's serving as it is, without waiting
    serving = lifecycle.serving_like("lean")
    assert serving.serverless == serverless
    lifecycle.promote(bucket, second, "lean", serving, "monitor", "test", wait=False)
    assert wait_in_service(sm, "lean")["EndpointStatus"] == "InService"
    [variant] = variants_of(sm, "lean")
    assert variant["ServerlessConfig"] == serverless and serves(sm, "lean", second)
    assert invoke(runtime, "lean")["predictions"]
    sm.delete_endpoint(EndpointName="lean")


def test_an_ab_endpoint_keeps_its_variants(sagemaker, tiny_bert, monkeypatch):
    sm, runtime, s3 = sagemaker
    bucket = registry_bucket(s3, monkeypatch, "postwerk-ab-lifecycle")
    first, second = trained_jobs(sm, s3, tiny_bert)
    artifact = sm.describe_training_job(TrainingJobName=first)["ModelArtifacts"]
    sm.create_model(ModelName="ab-start", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": "postwerk-model:latest",
                                      "ModelDataUrl": artifact["S3ModelArtifacts"]})  # fmt: skip
    shape = [
        {"VariantName": "a", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 3.0},
        {"VariantName": "b", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 1.0},
    ]  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName="ab-start",
        ProductionVariants=[variant | {"ModelName": "ab-start"} for variant in shape],
    )
    sm.create_endpoint(EndpointName="ab", EndpointConfigName="ab-start")
    endpoint = wait_in_service(sm, "ab")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")

    for job in (first, second):  # as the monitor promotes: the endpoint's serving as it is
        described = lifecycle.promote(
            bucket, job, "ab", lifecycle.serving_like("ab"), "test", "test"
        )
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        assert serves(sm, "ab", job)
        assert [{k: v[k] for k in shape[0]} for v in variants_of(sm, "ab")] == shape

    rolled_back = runner.invoke(app, ["rollback", "--endpoint", "ab"])
    assert rolled_back.exit_code == 0, rolled_back.output
    assert "a: 1 x ml.m5.large, b: 1 x ml.m5.large" in " ".join(rolled_back.output.split())
    assert serves(sm, "ab", first)
    assert [{k: v[k] for k in shape[0]} for v in variants_of(sm, "ab")] == shape
    answer = runtime.invoke_endpoint(
        EndpointName="ab", Body=b'{"inputs": ["hello"]}', ContentType="application/json",
        TargetVariant="b",
    )  # fmt: skip
    assert answer["InvokedProductionVariant"] == "b"
    variants = sm.describe_endpoint(EndpointName="ab")["ProductionVariants"]
    assert [v["CurrentInstanceCount"] for v in variants] == [1, 1]
    sm.delete_endpoint(EndpointName="ab")
