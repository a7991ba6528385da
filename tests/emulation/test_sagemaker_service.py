"""The service as a process: its state survives a restart, and its job slots queue."""

import boto3
import pytest

from tests.conftest import tiny_hyperparameters
from tests.emulation.conftest import BUCKET, model_archive, start_service, training_request
from tests.emulation.test_sagemaker_endpoints import create_config, deploy_model, invoke
from tests.emulation.test_sagemaker_training import wait


def test_jobs_queue_and_state_survives_a_restart(
    aws, tiny_bert, trained_job, tmp_path, monkeypatch
):
    process, url = start_service(aws, tmp_path, POSTWERK_SAGEMAKER_MAX_TRAINING_JOBS="1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    sm, runtime, s3 = (boto3.client(s) for s in ("sagemaker", "sagemaker-runtime", "s3"))
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    try:
        hyperparameters = tiny_hyperparameters(tiny_bert, epochs=1)
        sm.create_training_job(**training_request("first", s3, hyperparameters))
        sm.create_training_job(**training_request("second", s3, hyperparameters))
        queued = sm.describe_training_job(TrainingJobName="second")
        assert queued["TrainingJobStatus"] == "InProgress"
        assert (
            "Waiting for a free training slot"
            in (queued["SecondaryStatusTransitions"][-1]["StatusMessage"])
        )
        assert wait(sm, "first")["TrainingJobStatus"] == "Completed"
        assert wait(sm, "second")["TrainingJobStatus"] == "Completed"
        deploy_model(sm, s3, "durable", model_archive(trained_job / "model"))
        create_config(sm, "durable-config", "durable")
        sm.create_endpoint(EndpointName="durable", EndpointConfigName="durable-config")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="durable", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    finally:
        process.terminate()
        process.wait(60)

    process, url = start_service(aws, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    sm, runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
    try:
        job = sm.describe_training_job(TrainingJobName="second")
        assert job["TrainingJobStatus"] == "Completed"
        assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("/output/model.tar.gz")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="durable", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        assert invoke(runtime, "durable")["predictions"], "the endpoint serves again"
        sm.delete_endpoint(EndpointName="durable")
    finally:
        process.terminate()
        process.wait(60)


def test_an_invocation_past_the_timeout_is_a_model_error(aws, trained_job, tmp_path, monkeypatch):
    process, url = start_service(aws, tmp_path, POSTWERK_SAGEMAKER_INVOCATION_TIMEOUT="0.0001")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
    sm, runtime, s3 = (boto3.client(s) for s in ("sagemaker", "sagemaker-runtime", "s3"))
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    try:
        deploy_model(sm, s3, "slow", model_archive(trained_job / "model"))
        create_config(sm, "slow-config", "slow")
        sm.create_endpoint(EndpointName="slow", EndpointConfigName="slow-config")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="slow", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        with pytest.raises(runtime.exceptions.ModelError, match="timed out"):
            invoke(runtime, "slow")
    finally:
        process.terminate()
        process.wait(60)
