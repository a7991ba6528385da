"""Batch transform jobs through boto3: an archive of e-mails classified, each output line
keeping its message id; failed records reported; filters; list and stop."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from emulation.sagemaker.transform import json_filter
from services import waits
from tests.support.sagemaker import (
    BUCKET,
    EMAILS,
    deploy_model,
    model_archive,
    put_lines,
    transform_request,
)


def wait(sm, name: str) -> dict:
    """The job's description once it has finished (botocore's waiter, as backfill waits)."""
    waits.until(sm, "transform_job_completed_or_stopped", f"transform job {name}", 300, 0.5,
                TransformJobName=name)  # fmt: skip
    return sm.describe_transform_job(TransformJobName=name)


def read_lines(s3, key: str) -> list[dict]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert body.endswith("\n"), "AssembleWith Line: a line per record"
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def model(sagemaker, trained_job) -> str:
    sm, _, s3 = sagemaker
    name = f"transform-model-{time.time_ns()}"
    deploy_model(sm, s3, name, model_archive(trained_job / "model"))
    return name


def test_an_archive_is_classified_with_its_ids(sagemaker, sagemaker_service, model):
    sm, _, s3 = sagemaker
    put_lines(s3, "archive/2019/a.jsonl", [json.dumps(e) for e in EMAILS[:2]])
    put_lines(s3, "archive/2020/b.jsonl", [json.dumps(EMAILS[2])])
    sm.create_transform_job(**transform_request("archive", model, "archive"))
    job = wait(sm, "archive")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["BatchStrategy"] == "MultiRecord", "from the container's /execution-parameters"
    assert job["MaxPayloadInMB"] == 6 and job["MaxConcurrentTransforms"] >= 1

    rows = read_lines(s3, "archive/out/2019/a.jsonl.out") + read_lines(
        s3, "archive/out/2020/b.jsonl.out"
    )
    assert [row["id"] for row in rows] == ["m-1", "m-2", "m-3"]
    assert all(set(row) == {"id", "SageMakerOutput"} for row in rows), "the OutputFilter"
    assert rows[0]["SageMakerOutput"]["label"] in ("billing", "cancellation", "feedback")

    listed = sm.list_transform_jobs(NameContains="archive")["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in listed] == ["archive"]


def test_failed_records_are_reported_and_the_other_objects_written(sagemaker, model):
    sm, _, s3 = sagemaker
    put_lines(s3, "mixed/good.jsonl", [json.dumps(EMAILS[0])])
    put_lines(s3, "mixed/bad.jsonl", [json.dumps(EMAILS[1]), json.dumps({"id": ["not", "an id"]})])
    request = transform_request("mixed", model, "mixed", BatchStrategy="SingleRecord")
    request["DataProcessing"].pop("OutputFilter")
    sm.create_transform_job(**request)
    job = wait(sm, "mixed")
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("ClientError: 1 record(s) failed; the first, bad.jsonl line 2: ")
    assert "Bad HTTP status received from algorithm: 400" in reason
    assert len(read_lines(s3, "mixed/out/good.jsonl.out")) == 1
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="mixed/out/bad.jsonl.out")


def test_requests_that_cannot_run_are_refused(sagemaker, model):
    sm, _, _ = sagemaker
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_transform_job(**transform_request("no-model", "missing", "archive"))
    request = transform_request("bad-filter", model, "archive")
    request["DataProcessing"]["InputFilter"] = "$..body"
    with pytest.raises(ClientError, match=r"JSONPath|filters"):
        sm.create_transform_job(**request)
    with pytest.raises(ClientError, match=r"not InProgress|Could not find"):
        sm.stop_transform_job(TransformJobName="never-created")


def test_json_filters():
    record = {"id": "m-1", "meta": {"tags": ["a", "b"]}, "body": "text"}
    assert json_filter("$") is None
    assert json_filter("$.meta.tags[1]")(record) == "b"
    assert json_filter("$['meta']['tags']")(record) == ["a", "b"]
    assert json_filter("$['id','body']")(record) == {"id": "m-1", "body": "text"}
