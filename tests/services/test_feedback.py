"""The feedback function (review API) as API Gateway's HTTP API calls it, against the
embedded backend: listing, reading, confirming, correcting, and every way to get it wrong."""

import json

import boto3
import pytest

from services import feedback
from tests.support.review import ARTIFACTS, LABELS, TABLE, answer_of, call


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
