"""The feedback function (review API) as API Gateway's HTTP API calls it, against the
embedded backend: listing, reading, confirming, correcting, and every way to get it wrong."""

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest

from postwerk.samples import generate, to_eml
from services import feedback, registry
from tests.services.conftest import LambdaContext

TABLE, RAW, ARTIFACTS = "results", "raw", "artifacts"
LABELS = ["billing_question", "complaint", "other"]


def http_event(method, path, body: dict | str | None = None, query=None, headers=None) -> dict:
    """An API Gateway HTTP API (payload 2.0) event, body base64 as the emulators send it."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "queryStringParameters": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
            "requestId": "r",
            "stage": "$default",
        },
        "body": base64.b64encode(raw.encode()).decode() if raw is not None else None,
        "isBase64Encoded": raw is not None,
    }


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


def test_the_page_is_served_at_the_root(stored):
    status, page = call("GET", "/")
    assert status == 200 and "<title>postwerk review</title>" in page


def test_the_review_list_holds_what_needs_review_newest_first_and_searches(stored):
    status, answer = call("GET", "/api/results")
    assert status == 200
    assert [r["message_id"] for r in answer["results"]] == ["m2", "m0"]
    assert answer["labels"] == LABELS
    assert answer["results"][0]["subject"] == stored[2].subject
    _, everything = call("GET", "/api/results", query={"status": "all"})
    assert everything["total"] == 3
    _, found = call("GET", "/api/results", query={"status": "all", "q": stored[1].subject[:6]})
    assert [r["message_id"] for r in found["results"]] == ["m1"]


def test_one_result_comes_with_the_emails_text(stored):
    status, answer = call("GET", "/api/results/m0")
    assert status == 200
    assert stored[0].body.split("\n\n")[1][:40] in answer["body"]


def test_a_correction_is_stored_as_training_data_and_audited_once(stored):
    status, answer = call("POST", "/api/results/m0/review", {"label": "other", "reviewer": "anna"})
    assert status == 200 and answer["changed"] is True and answer["label"] == "other"
    item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"message_id": "m0"})["Item"]
    assert item["label"] == "other" and item["needs_review"] is True, "the model's flag stays"
    [entry] = item["reviews"]
    assert entry["reviewer"] == "anna" and entry["previous_label"] == "complaint"
    assert entry["label"] == "other" and entry["reviewed_at"]
    row = json.loads(
        boto3.client("s3").get_object(Bucket=ARTIFACTS, Key="feedback/m0.jsonl")["Body"].read()
    )
    assert row["label"] == "other" and row["subject"] == stored[0].subject
    assert stored[0].body.split("\n\n")[1][:40] in row["body"]

    again = call("POST", "/api/results/m0/review", {"label": "other", "reviewer": "anna"})
    assert again[0] == 200 and again[1]["changed"] is False
    item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"message_id": "m0"})["Item"]
    assert len(item["reviews"]) == 1, "the same decision twice is one decision"
    _, queue = call("GET", "/api/results")
    assert [r["message_id"] for r in queue["results"]] == ["m2"], "reviewed leaves the queue"


def test_confirming_keeps_the_label_and_records_who(stored):
    status, answer = call(
        "POST", "/api/results/m2/review", {"label": "complaint", "reviewer": "ben"}
    )
    assert (
        status == 200
        and answer["label"] == "complaint"
        and answer["reviews"][0]["reviewer"] == "ben"
    )


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/api/results/nope/review", {"label": "other", "reviewer": "a"}, 404, "no result for"),
    ("/api/results/m0/review", {"label": "spam", "reviewer": "a"}, 400, "unknown label 'spam'"),
    ("/api/results/m0/review", {"label": "other"}, 400, "reviewer"),
    ("/api/results/m0/review", "{not json", 400, "expected"),
])  # fmt: skip
def test_bad_reviews_are_refused_with_a_reason_and_change_nothing(
    stored, path, body, status, message
):
    answer = call("POST", path, body)
    assert answer[0] == status and message in answer[1]["message"]
    item = boto3.resource("dynamodb").Table(TABLE).get_item(Key={"message_id": "m0"})["Item"]
    assert item["label"] == "complaint" and "reviews" not in item


def test_a_concurrent_change_is_a_conflict_not_an_overwrite(stored, monkeypatch):
    real_load = feedback.load

    def stale_load(message_id):
        seen = real_load(message_id)
        boto3.resource("dynamodb").Table(TABLE).update_item(
            Key={"message_id": message_id},
            UpdateExpression="SET label = :l",
            ExpressionAttributeValues={":l": "billing_question"},
        )
        return seen

    monkeypatch.setattr(feedback, "load", stale_load)
    status, answer = call("POST", "/api/results/m0/review", {"label": "other", "reviewer": "a"})
    assert status == 409 and "reload" in answer["message"]


def test_without_a_champion_the_api_says_so(stored):
    boto3.client("s3").delete_object(Bucket=ARTIFACTS, Key="registry/champion.json")
    status, answer = call("GET", "/api/results")
    assert status == 503 and "no champion model" in answer["message"]


def test_with_a_review_token_the_api_wants_it_and_the_page_stays_open(stored, monkeypatch):
    monkeypatch.setenv("POSTWERK_REVIEW_TOKEN", "s3cret-token")
    assert call("GET", "/")[0] == 200
    status, answer = call("GET", "/api/results")
    assert status == 401 and "review token" in answer["message"]
    assert answer_of("GET", "/api/results")["headers"]["WWW-Authenticate"] == "Bearer"
    wrong = {"authorization": "Bearer guess"}
    assert (
        call("POST", "/api/results/m0/review", {"label": "other", "reviewer": "a"}, None, wrong)[0]
        == 401
    )
    right = {"authorization": "Bearer s3cret-token"}
    assert call("GET", "/api/results", None, None, right)[0] == 200
