"""What `postwerk up` does after a crash of the local AWS, against the embedded backend:
postwerk's buckets that MiniStack brought back bare are set aside and refilled once made
again (postwerk/recovery.py), and the incoming/ objects that have neither a result nor a
rejection get their S3 notification again (postwerk.pipeline.redrive). The whole stack
killed and brought up again: tests/e2e/test_pipeline.py."""

import json
from email.message import EmailMessage

import boto3

from postwerk import pipeline, recovery
from postwerk.sagemaker import ensure_bucket
from services.ingest import read_notification

RAW = "raw-recovery-tests"
TABLE = "results-recovery-tests"


def email(message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = "kunde@example.org"
    message["To"] = "support@postwerk.localhost"
    message["Subject"] = "Rechnung doppelt"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content("Sie haben mir die Rechnung zweimal geschickt.")
    return message.as_bytes()


def result(message_id: str, key: str) -> dict:
    source = {"M": {"bucket": {"S": RAW}, "key": {"S": key}, "sha256": {"S": "0" * 64}}}
    summary = {"subject": {"S": "x"}, "language": {"S": "de"}, "length": {"N": "1"}}
    return {
        "message_id": {"S": message_id},
        "label": {"S": "billing"},
        "score": {"N": "0.9"},
        "top_k": {"L": []},
        "needs_review": {"BOOL": False},
        "model": {"M": {"name": {"S": "m"}, "version": {"S": "1"}}},
        "classified_at": {"S": "2026-12-08T00:00:00+00:00"},
        "input": {"M": summary | {"source": source}},
    }


def test_only_what_has_neither_result_nor_rejection_is_sent_again(aws):
    ensure_bucket(RAW)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="incoming-recovery-tests")["QueueUrl"]
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = boto3.client("s3")
    objects = {
        "incoming/classified.eml": email("classified@example.org"),
        "incoming/same e-mail again.eml": email("classified@example.org"),
        "incoming/rejected.png": b"\x89PNG",
        "incoming/lost in the crash.eml": email("lost@example.org"),
    }
    for key, body in objects.items():
        s3.put_object(Bucket=RAW, Key=key, Body=body)
    s3.put_object(Bucket=RAW, Key="rejected/incoming/rejected.png.reason.json", Body=b"{}")
    dynamodb.put_item(
        TableName=TABLE, Item=result("classified@example.org", "incoming/classified.eml")
    )
    outputs = {"RawBucket": RAW, "ResultsTable": TABLE, "IncomingQueueUrl": queue}

    assert pipeline.redrive(outputs) == ["incoming/lost in the crash.eml"]

    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    [lost] = read_notification(json.loads(message["Body"]))  # as ingest reads it
    assert lost.message_id == "lost@example.org"
    assert lost.source.key == "incoming/lost in the crash.eml"


def test_a_bucket_that_came_back_bare_is_set_aside_and_refilled_once_made_again(aws):
    [raw, results] = recovery.stack_buckets()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=raw)  # us-east-1: as MiniStack brings it back from disk
    s3.put_object(Bucket=raw, Key="incoming/a.eml", Body=email("a@example.org"))
    ensure_bucket(results)  # in our region: as created

    assert recovery.set_aside([raw, results]) == [raw]
    assert not recovery.exists(raw)
    assert recovery.restore() == {}, "nothing to refill before the bucket is made again"

    ensure_bucket(raw)  # as the stack makes it
    assert recovery.restore() == {raw: 1}
    body = boto3.client("s3").get_object(Bucket=raw, Key="incoming/a.eml")["Body"].read()
    assert body == email("a@example.org")
    names = [bucket["Name"] for bucket in boto3.client("s3").list_buckets()["Buckets"]]
    assert sorted(names) == sorted([raw, results])
