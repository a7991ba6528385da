"""Plugin: the review API (the feedback function) called in-process as API Gateway calls it,
on the embedded backend: `stored` results to review, and the `desk` staff answer from."""

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest

from postwerk.samples import generate, to_eml
from services import feedback, registry
from tests.support.lambdas import LambdaContext, http_event

TABLE, RAW, ARTIFACTS = "results", "raw", "artifacts"
LABELS = ["billing_question", "complaint", "other"]
SUPPORT = "service@postwerk.example"
GERMAN = ("Antwort Beschwerde", "{salutation}\n\nzu Ihrem Vertrag {contract_number}: "
          "Entschuldigung.\nIhre Kundennummer: {customer_number}\n\nViele Grüße")  # fmt: skip
ENGLISH = ("Complaint reply", "{salutation}\n\nwe are sorry about contract "
           "{contract_number}.\n\nKind regards")  # fmt: skip


def call(method: str, path: str, body=None, query=None, headers=None) -> tuple[int, dict | str]:
    answer = answer_of(method, path, body, query, headers)
    text = answer["body"]
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    is_json = answer["headers"].get("Content-Type", "").startswith("application/json")
    return answer["statusCode"], json.loads(text) if is_json else text


def answer_of(method: str, path: str, body=None, query=None, headers=None) -> dict:
    return feedback.handler(http_event(method, path, body, query, headers), LambdaContext())


@pytest.fixture
def stored(aws, monkeypatch):
    """A results table with three results (one confident), their raw e-mails, a champion."""
    monkeypatch.setenv("POSTWERK_RESULTS_TABLE", TABLE)
    monkeypatch.setenv("POSTWERK_ARTIFACTS_BUCKET", ARTIFACTS)
    s3 = boto3.client("s3")
    for bucket in (RAW, ARTIFACTS):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = boto3.resource("dynamodb").Table(TABLE)
    emails = generate(count=4, seed=9)[1:4]  # complaint, offer request, billing question
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)  # inside any monitoring window
    for number, (email, value) in enumerate(zip(emails, (0.41, 0.93, 0.38), strict=True)):
        key = f"incoming/{number}.eml"
        s3.put_object(Bucket=RAW, Key=key, Body=to_eml(email))
        score = Decimal(str(value))
        table.put_item(Item={
            "schema": "classification.v1", "message_id": f"m{number}", "label": "complaint",
            "score": score, "top_k": [{"label": "complaint", "score": score}],
            "needs_review": score < 0.5, "model": {"name": "n", "version": "v"},
            "classified_at": (an_hour_ago + timedelta(minutes=number)).isoformat(),
            "input": {"subject": email.subject, "language": email.language, "length": 99,
                      "source": {"bucket": RAW, "key": key, "sha256": "0" * 64}},
        })  # fmt: skip
    # trained on what the window predicts: no label drift
    info = {"labels": LABELS, "version": "v", "metrics": {},
            "train_label_counts": {"complaint": 30}}  # fmt: skip
    registry.register(ARTIFACTS, registry.ModelVersion(
        job="job-1", registered_at=registry.now(), model_data_url="s3://m/model.tar.gz",
        model_info=registry.ModelInfo.model_validate(info)))  # fmt: skip
    registry.set_champion(ARTIFACTS, "job-1", "test")
    return emails


@pytest.fixture
def desk(stored, monkeypatch):
    """The review API with a support address, the German and English complaint templates,
    and an English complaint (m9) next to the German ones."""
    monkeypatch.setenv("POSTWERK_SUPPORT_ADDRESS", SUPPORT)
    boto3.client("ses").verify_email_identity(EmailAddress=SUPPORT)
    english = next(e for e in generate(count=14, seed=4) if e.label == "complaint"
                   and e.language == "en")  # fmt: skip
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=to_eml(english))
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        "schema": "classification.v1", "message_id": "m9", "label": "complaint",
        "score": Decimal("0.9"), "top_k": [], "needs_review": False,
        "model": {"name": "n", "version": "v"}, "classified_at": datetime.now(UTC).isoformat(),
        "input": {"subject": english.subject, "language": "en", "length": 9,
                  "source": {"bucket": RAW, "key": "incoming/9.eml", "sha256": "0" * 64}},
    })  # fmt: skip
    for language, (title, body) in (("de", GERMAN), ("en", ENGLISH)):
        status, _ = call("POST", "/api/templates", {"category": "complaint", "language": language,
                         "title": title, "body": body, "author": "lena"})  # fmt: skip
        assert status == 201
    return [*stored, english]


def similar_replies(answer: dict) -> list[dict]:
    """The suggestions drawn from replies sent to similar e-mails (not from templates)."""
    return [s for s in answer["suggestions"] if s["source"].startswith("reply:")]
