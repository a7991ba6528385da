"""Training jobs through plain boto3 against the local SageMaker service."""

import io
import tarfile
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.sagemaker import BUCKET, training_request, wait_for_training_job
from tests.support.tiny_model import tiny_hyperparameters

# Refused before torch loads: a job that ends within a second or two, where a test needs
# jobs to exist and end but not to train.
ENDS_AT_ONCE = {"epochs": "many"}


def test_a_job_trains_uploads_and_reports(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    request = training_request("tiny-1", s3, tiny_hyperparameters(tiny_bert, epochs=2))
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn.endswith(":training-job/tiny-1")

    job = wait_for_training_job(sm, "tiny-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["epoch"] == 2.0, "the last value of each metric"
    assert 0 <= metrics["validation_accuracy"] <= 1

    model_key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    assert model_key == "tiny-1/artifacts/tiny-1/output/model.tar.gz"
    assert {"model.safetensors", "model_info.json"} <= archive_names(s3, model_key)
    output_key = model_key.replace("model.tar.gz", "output.tar.gz")
    assert "evaluation.json" in archive_names(s3, output_key)

    logs = boto3.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="tiny-1/"
    )["logStreams"]
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"]
    )["events"]
    assert any("epoch=2;" in event["message"] for event in events)


def test_a_failing_job_says_why(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    hyperparameters = tiny_hyperparameters(tiny_bert, epochs=1, learning_rat=0.1)
    sm.create_training_job(**training_request("typo", s3, hyperparameters))
    job = wait_for_training_job(sm, "typo")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ")
    assert "learning_rat" in job["FailureReason"] and "exit code 1" in job["FailureReason"]
    assert job["SecondaryStatusTransitions"][-1]["Status"] == "Failed"


def test_a_channel_without_data_fails_the_job(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    request = training_request("no-data", s3, tiny_hyperparameters(tiny_bert))
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/nothing/"
    sm.create_training_job(**request)
    job = wait_for_training_job(sm, "no-data")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == (
        f"ClientError: no S3 objects found under S3 URL 's3://{BUCKET}/nothing/'"
    )


def test_stop_ends_a_running_job(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    request = training_request("long", s3, tiny_hyperparameters(tiny_bert, epochs=500))
    sm.create_training_job(**request)
    for _ in range(600):
        if sm.describe_training_job(TrainingJobName="long")["SecondaryStatus"] == "Training":
            break
        time.sleep(0.1)
    sm.stop_training_job(TrainingJobName="long")
    job = wait_for_training_job(sm, "long")
    assert job["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError, match="ValidationException"):
        sm.stop_training_job(TrainingJobName="long")


def test_errors_are_aws_errors(sagemaker):
    sm, _, s3 = sagemaker
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_training_job(TrainingJobName="never-created")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.stop_training_job(TrainingJobName="never-created")
    with pytest.raises(ClientError, match=r"ValidationException.*pattern"):
        sm.create_training_job(**training_request("no_underscores", s3, {}))
    request = training_request("twice", s3, ENDS_AT_ONCE)
    sm.create_training_job(**request)
    with pytest.raises(sm.exceptions.ResourceInUse):
        sm.create_training_job(**request)
    wait_for_training_job(sm, "twice")


def test_list_filters_sorts_and_pages(sagemaker):
    sm, _, s3 = sagemaker
    for name in ("list-a", "list-b", "list-c"):
        sm.create_training_job(**training_request(name, s3, ENDS_AT_ONCE))
    page = sm.list_training_jobs(NameContains="list-", MaxResults=2, SortOrder="Descending")
    assert [j["TrainingJobName"] for j in page["TrainingJobSummaries"]] == ["list-c", "list-b"]
    rest = sm.list_training_jobs(NameContains="list-", MaxResults=2, SortOrder="Descending",
                                 NextToken=page["NextToken"])  # fmt: skip
    assert [j["TrainingJobName"] for j in rest["TrainingJobSummaries"]] == ["list-a"]
    for name in ("list-a", "list-b", "list-c"):
        wait_for_training_job(sm, name)
    failed = sm.list_training_jobs(NameContains="list-", StatusEquals="Failed")
    assert len(failed["TrainingJobSummaries"]) == 3
    assert (
        sm.list_training_jobs(NameContains="list-", StatusEquals="Completed")[
            "TrainingJobSummaries"
        ]
        == []
    )


def archive_names(s3, key: str) -> set[str]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return set(archive.getnames())
