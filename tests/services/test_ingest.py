"""The ingest function against the embedded backend: SQS batch of S3 notifications in,
Kinesis records out."""

import io
import json

import boto3

from services import ingest
from services.records import EmailV1
from tests.support.aws import read_stream
from tests.support.lambdas import LambdaContext, s3_event, sqs_event
from tests.support.mail import simple

RAW = "postwerk-raw"


def test_emails_go_to_the_stream_and_the_rest_is_rejected(aws, monkeypatch):
    logs = io.StringIO()
    monkeypatch.setattr(ingest.logger.registered_handler, "stream", logs)
    monkeypatch.setenv("POSTWERK_EMAILS_STREAM", "emails")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=RAW, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    boto3.client("kinesis").create_stream(StreamName="emails", ShardCount=1)
    body = "Guten Tag, bitte ändern Sie meine Adresse auf Hauptstraße 5."
    s3.put_object(Bucket=RAW, Key="incoming/a b.eml", Body=simple(body))
    s3.put_object(Bucket=RAW, Key="incoming/photo.png", Body=b"\x89PNG\r\n\x1a\n\x00\x00")
    defective = b"From: John Doe.<john@example.com>\r\nMessage-Id: <>\r\nSubject: " + b"x" * 20_000
    s3.put_object(Bucket=RAW, Key="incoming/defective.eml", Body=defective + b"\r\n\r\nhi")

    event = sqs_event(
        json.dumps(s3_event(RAW, "incoming/a b.eml", "incoming/photo.png")),
        json.dumps(s3_event(RAW, "incoming/defective.eml")),  # raised before: dead-lettered
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        json.dumps(s3_event(RAW, "incoming/vanished.eml")),  # deleted before ingest read it
    )
    answer = ingest.handler(event, LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-3"}]}, "SQS retries it"
    record, flagged = read_stream("emails")
    email = EmailV1.model_validate_json(record["Data"])
    defective = EmailV1.model_validate_json(flagged["Data"])
    assert defective.sender == "john@example.com" and defective.message_id.startswith("sha256-")
    assert {"header_truncated", "subject_truncated"} <= set(defective.flags)
    assert record["PartitionKey"] == email.message_id == "m1@example.de"
    assert email.body_text == body and email.source.key == "incoming/a b.eml"
    reason = json.loads(
        s3.get_object(Bucket=RAW, Key="rejected/incoming/photo.png.reason.json")["Body"].read()
    )
    assert "binary" in reason["reason"]
    assert s3.get_object(Bucket=RAW, Key="rejected/incoming/photo.png")["Body"].read()[:4] == (
        b"\x89PNG"
    )
    logs = logs.getvalue()
    assert "m1@example.de" in logs, "logs name the message id"
    assert "kunde@example.de" not in logs and "Hauptstraße" not in logs, "never personal data"
