"""The classify function against the embedded backend and a local SageMaker endpoint."""

import json
import threading
import time
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from services import classify
from services.records import EmailV1, Source
from tests.support.lambdas import LambdaContext, kinesis_event
from tests.support.sagemaker import (
    PAYLOAD,
    SERVERLESS_IDLE_SECONDS,
    endpoint_serving,
    replica_processes,
)

RESULTS = "postwerk-results"


def email(message_id: str, subject: str, body: str) -> bytes:
    record = EmailV1(
        message_id=message_id,
        received_at=datetime.now(UTC),
        sender="x@example.com",
        recipients=[],
        subject=subject,
        body_text=body,
        language="en",
        attachments=[],
        source=Source(bucket="raw", key=f"incoming/{message_id}.eml", sha256="0" * 64),
    )
    return record.model_dump_json(by_alias=True).encode()


@pytest.fixture
def endpoint(sagemaker, trained_job, monkeypatch):
    with endpoint_serving(sagemaker, trained_job, "classify-endpoint"):
        create_tables(monkeypatch, sagemaker[2])
        yield


@pytest.fixture
def serverless_endpoint(sagemaker, trained_job, monkeypatch):
    """A serverless endpoint that takes one request at a time."""
    with endpoint_serving(sagemaker, trained_job, "classify-endpoint", {"MaxConcurrency": 1}):
        create_tables(monkeypatch, sagemaker[2])
        yield


def create_tables(monkeypatch, s3):
    boto3.client("dynamodb").create_table(
        TableName="results",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
    )
    s3.create_bucket(
        Bucket=RESULTS, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    for name, value in {
        "ENDPOINT_NAME": "classify-endpoint",
        "RESULTS_TABLE": "results",
        "RESULTS_BUCKET": RESULTS,
        "REVIEW_THRESHOLD": "0.9",
    }.items():
        monkeypatch.setenv(f"POSTWERK_{name}", value)


def stored_results() -> dict[str, dict]:
    items = boto3.resource("dynamodb").Table("results").scan()["Items"]
    return {item["message_id"]: item for item in items}


def result_lines() -> list[dict]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=RESULTS).get("Contents", [])]
    assert all(key.startswith("results/date=") for key in keys)
    return [
        json.loads(line)
        for key in keys
        for line in s3.get_object(Bucket=RESULTS, Key=key)["Body"].read().splitlines()
    ]


def test_a_batch_is_classified_once_and_bad_records_fail_alone(endpoint):
    event = kinesis_event(
        email("m1", "Wrong invoice", "my invoice amount is wrong, please correct the bill"),
        b"{not an email.v1 record",
        email("m2", "Cancel", "I want to cancel my contract"),
    )
    answer = classify.handler(event, LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "1001"}]}
    results = stored_results()
    assert set(results) == {"m1", "m2"}
    direct = json.loads(
        boto3.client("sagemaker-runtime")
        .invoke_endpoint(
            EndpointName="classify-endpoint",
            ContentType="application/json",
            Body=json.dumps(
                {
                    "instances": [
                        {
                            "id": "m1",
                            "subject": "Wrong invoice",
                            "body": "my invoice amount is wrong, please correct the bill",
                        }
                    ]
                }
            ),
        )["Body"]
        .read()
    )["predictions"][0]
    assert results["m1"]["label"] == direct["label"]
    # The model has calibration.json: its label's threshold decides, not the setting's 0.9.
    assert float(results["m1"]["review_threshold"]) == direct["review_threshold"]
    assert results["m1"]["needs_review"] == (direct["score"] < direct["review_threshold"])
    assert sorted(line["message_id"] for line in result_lines()) == ["m1", "m2"]

    again = classify.handler(event, LambdaContext())  # the mapping delivers the batch again
    assert again == answer
    assert len(stored_results()) == 2 and len(result_lines()) == 2, "no second result"


def test_an_unreachable_endpoint_fails_every_record(endpoint, monkeypatch):
    monkeypatch.setenv("POSTWERK_ENDPOINT_NAME", "no-such-endpoint")
    event = kinesis_event(email("m3", "Hello", "thanks for the service"))
    with pytest.raises(BatchProcessingError, match="All records failed"):
        classify.handler(event, LambdaContext())  # a function error: the mapping retries
    assert stored_results() == {}


@pytest.mark.long  # waits for the serverless endpoint to scale to zero
def test_a_throttled_call_is_retried_and_still_throttled_fails_its_records_alone(
    serverless_endpoint, sagemaker_service, monkeypatch
):
    """MaxConcurrency 1, taken by another caller's cold start: classify's first call stays
    throttled after its retry and its record fails alone; the second call's retry gets
    through once the other caller is answered. The mapping's retry stores the first."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: see classify's
    monkeypatch.setattr(classify, "MAX_REQUEST_BYTES", 1)  # one call per e-mail
    monkeypatch.setattr(classify, "THROTTLE_BACKOFF_S", (0.01,))
    wait_for_no_replica(sagemaker_service, "classify-endpoint")
    other = threading.Thread(target=boto3.client("sagemaker-runtime").invoke_endpoint,
                             kwargs={"EndpointName": "classify-endpoint", "Body": PAYLOAD,
                                     "ContentType": "application/json"})  # fmt: skip
    other.start()
    time.sleep(1)  # it waits for the replica it started, holding the one slot
    pauses = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:  # the second call's backoff outlasts the other caller
            other.join()

    monkeypatch.setattr(classify, "pause", pause)
    event = kinesis_event(
        email("m1", "Wrong invoice", "my invoice amount is wrong, please correct the bill"),
        email("m2", "Cancel", "I want to cancel my contract"),
    )
    answer = classify.handler(event, LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "1000"}]}
    assert len(pauses) == 2 and set(stored_results()) == {"m2"}

    retried = {"Records": event["Records"][:1]}  # the mapping retries the failed record
    assert classify.handler(retried, LambdaContext()) == {"batchItemFailures": []}
    assert set(stored_results()) == {"m1", "m2"} and len(result_lines()) == 2


def wait_for_no_replica(sagemaker_service, endpoint: str) -> None:
    deadline = time.monotonic() + SERVERLESS_IDLE_SECONDS + 20
    while replica_processes(sagemaker_service, endpoint):
        assert time.monotonic() < deadline, "the idle serverless endpoint keeps a replica"
        time.sleep(0.2)
