"""The service as a process: its state survives a restart, and its job slots queue."""

import contextlib
from contextlib import contextmanager

import boto3
import pytest

from tests.support.sagemaker import (
    BUCKET,
    FAST_WAITER,
    create_config,
    deploy_model,
    invoke,
    model_archive,
    start_service,
    training_request,
    wait_for_training_job,
)
from tests.support.tiny_model import tiny_hyperparameters


@contextmanager
def own_service(aws, state_dir, monkeypatch, **settings):
    """A service of this test's own (settings, restarts), boto3 pointed at it."""
    process, url = start_service(aws, state_dir, **settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
    try:
        yield boto3.client("sagemaker"), boto3.client("sagemaker-runtime"), s3
    finally:
        process.terminate()
        process.wait(60)


def wait_in_service(sm, name: str) -> None:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def test_jobs_queue_and_state_survives_a_restart(
    aws, tiny_bert, trained_job, tmp_path, monkeypatch
):
    slots = {"POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS": "1"}
    with own_service(aws, tmp_path, monkeypatch, **slots) as (sm, _, s3):
        ends_at_once = {"epochs": "many"}  # refused before torch loads: it holds the slot
        sm.create_training_job(**training_request("first", s3, ends_at_once))
        hyperparameters = tiny_hyperparameters(tiny_bert, epochs=1)
        sm.create_training_job(**training_request("second", s3, hyperparameters))
        queued = sm.describe_training_job(TrainingJobName="second")
        assert queued["TrainingJobStatus"] == "InProgress"
        message = queued["SecondaryStatusTransitions"][-1]["StatusMessage"]
        assert "Waiting for a free training slot" in message
        assert wait_for_training_job(sm, "first")["TrainingJobStatus"] == "Failed"
        assert wait_for_training_job(sm, "second")["TrainingJobStatus"] == "Completed"
        deploy_model(sm, s3, "durable", model_archive(trained_job / "model"))
        create_config(sm, "durable-config", "durable")
        sm.create_endpoint(EndpointName="durable", EndpointConfigName="durable-config")
        wait_in_service(sm, "durable")

    with own_service(aws, tmp_path, monkeypatch) as (sm, runtime, _):
        job = sm.describe_training_job(TrainingJobName="second")
        assert job["TrainingJobStatus"] == "Completed"
        assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")
        wait_in_service(sm, "durable")
        assert invoke(runtime, "durable")["predictions"], "the endpoint serves again"
        sm.delete_endpoint(EndpointName="durable")


def test_an_invocation_past_the_timeout_is_a_model_error(aws, trained_job, tmp_path, monkeypatch):
    timeout = {"POSTWERK_SAGEMAKER_INVOCATION_TIMEOUT": "0.0001"}
    with own_service(aws, tmp_path, monkeypatch, **timeout) as (sm, runtime, s3):
        deploy_model(sm, s3, "slow", model_archive(trained_job / "model"))
        create_config(sm, "slow-config", "slow")
        sm.create_endpoint(EndpointName="slow", EndpointConfigName="slow-config")
        wait_in_service(sm, "slow")
        with pytest.raises(runtime.exceptions.ModelError, match="timed out"):
            invoke(runtime, "slow")
