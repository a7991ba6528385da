"""Reply templates, suggestions and sending through the review API, against the embedded
backend's S3 and SES."""

import email
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from itertools import product

import boto3
import pytest
from typer.testing import CliRunner

from postwerk.cli import app
from postwerk.samples import CATEGORIES, LANGUAGES, generate, to_eml
from services.replies import examples, index_store, reindex, sending, templates
from services.replies.templates import TEMPLATES
from tests.support.review import (
    ARTIFACTS,
    ENGLISH,
    GERMAN,
    RAW,
    SUPPORT,
    TABLE,
    call,
    similar_replies,
)
from tests.support.sagemaker import endpoint_serving


def test_suggestions_come_in_the_emails_language_with_its_facts_filled_in(desk):
    status, answer = call("GET", "/api/results/m0/suggestions")
    assert status == 200 and answer["language"] == "de"
    [german] = answer["suggestions"]
    assert german["title"] == GERMAN[0]
    assert german["text"].startswith(f"Guten Tag {desk[0].sender_name},")
    assert german["missing"], "what the e-mail does not say stays visible"
    assert all("{" + name + "}" in german["text"] for name in german["missing"])
    [number] = re.findall(r"Kundennummer ist (\d+)", desk[2].body)  # m2 states it
    _, answer = call("GET", "/api/results/m2/suggestions")
    assert f"Kundennummer: {number}" in answer["suggestions"][0]["text"]
    _, answer = call("GET", "/api/results/m9/suggestions")
    assert [s["title"] for s in answer["suggestions"]] == [ENGLISH[0]]
    assert answer["suggestions"][0]["text"].startswith(f"Dear {desk[3].sender_name},")


def test_an_email_too_short_to_tell_its_language_gets_each_languages_templates(desk):
    raw = (b"From: =?utf-8?q?M=C3=BCller=2C_Hans?= <hans@kunden.example>\r\n"
           b"Subject: Storno\r\nMessage-ID: <short@kunden.example>\r\n\r\n"
           b"Storno 4711\r\n")  # fmt: skip
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/10.eml", Body=raw)
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        "schema": "classification.v1", "message_id": "m10", "label": "complaint",
        "score": Decimal("0.9"), "top_k": [], "needs_review": False,
        "model": {"name": "n", "version": "v"}, "classified_at": datetime.now(UTC).isoformat(),
        "input": {"subject": "Storno", "language": "unknown", "length": 11,
                  "source": {"bucket": RAW, "key": "incoming/10.eml", "sha256": "0" * 64}},
    })  # fmt: skip
    status, answer = call("GET", "/api/results/m10/suggestions")
    assert status == 200 and answer["language"] == "unknown"
    texts = {suggestion["title"]: suggestion["text"] for suggestion in answer["suggestions"]}
    assert texts[GERMAN[0]].startswith("Guten Tag Hans Müller,")  # Outlook's "Müller, Hans"
    assert texts[ENGLISH[0]].startswith("Dear Hans Müller,")


def test_templates_are_versioned_retired_and_checked_when_saved(desk):
    _, listed = call("GET", "/api/templates")
    german = next(t for t in listed["templates"] if t["language"] == "de")
    changed = {**{k: german[k] for k in ("category", "language", "title", "body")},
               "retired": True, "author": "jo"}  # fmt: skip
    status, saved = call("PUT", f"/api/templates/{german['template_id']}", changed)
    assert status == 200 and saved["version"] == 2 and saved["retired"] is True
    assert call("GET", "/api/results/m0/suggestions")[1]["suggestions"] == []
    status, refused = call("POST", "/api/templates", {**changed, "body": "Hallo {iban}"})
    assert (status == 400 and "{iban}" in refused["message"]) or "iban" in refused["message"]
    status, missing = call("PUT", "/api/templates/nope", changed)
    assert status == 404 and "nope" in missing["message"]


def test_a_reply_goes_out_once_threaded_to_the_original_sender(desk):
    suggestion = call("GET", "/api/results/m9/suggestions")[1]["suggestions"][0]
    request = {"draft_id": uuid.uuid4().hex, "text": suggestion["text"] + "\nEdited.",
               "sender": "lena", "suggestion": suggestion["source"],
               "suggested_text": suggestion["text"]}  # fmt: skip
    status, first = call("POST", "/api/results/m9/send", request)
    assert status == 200 and first["sent_now"] is True and first["status"] == "sent"
    assert 0 < first["edited"] < 0.2
    again = call("POST", "/api/results/m9/send", request)
    assert again[0] == 200 and again[1]["sent_now"] is False
    [(record, raw_key)] = sending.outbox(ARTIFACTS)
    assert record.ses_message_id == first["ses_message_id"]
    raw = boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=raw_key)["Body"].read()
    message = email.message_from_bytes(raw)
    assert message["To"] == desk[3].sender and message["From"] == SUPPORT
    assert message["In-Reply-To"] == desk[3].message_id
    assert message["References"] == desk[3].message_id
    assert message["Subject"] == f"Re: {desk[3].subject}"
    pairs = boto3.client("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix=sending.PAIRS)
    [pair] = pairs["Contents"]
    row = json.loads(
        boto3.client("s3").get_object(Bucket=ARTIFACTS, Key=pair["Key"])["Body"].read()
    )
    assert row["label"] == "complaint" and row["reply"] == request["text"]


def test_the_outbox_lists_what_was_sent_with_its_mime(desk, monkeypatch):
    request = {"draft_id": uuid.uuid4().hex, "text": "Grüße", "sender": "lena"}
    assert call("POST", "/api/results/m9/send", request)[0] == 200
    monkeypatch.setenv("POSTWERK_BUCKET", ARTIFACTS)
    shown = CliRunner().invoke(app, ["outbox", "--raw"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "lena" in shown.output and f"In-Reply-To: {desk[3].message_id}" in shown.output


def test_bad_sends_are_refused_with_the_reason(desk):
    request = {"draft_id": uuid.uuid4().hex, "text": "x", "sender": "lena"}
    status, answer = call("POST", "/api/results/unknown/send", request)
    assert status == 404 and "unknown" in answer["message"]
    status, answer = call("POST", "/api/results/m9/send", {**request, "draft_id": "../x"})
    assert status == 400
    no_reply = to_eml(desk[3]).replace(desk[3].sender.encode(), b"noreply@kunden.example")
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=no_reply)
    status, answer = call("POST", "/api/results/m9/send", request)
    assert status == 400 and "no-reply" in answer["message"]
    assert sending.outbox(ARTIFACTS) == []


def test_the_new_routes_want_the_review_token(desk, monkeypatch):
    monkeypatch.setenv("POSTWERK_REVIEW_TOKEN", "secret")
    for method, path in (("GET", "/api/templates"), ("POST", "/api/templates"),
                         ("GET", "/api/results/m0/suggestions"),
                         ("POST", "/api/results/m0/send")):  # fmt: skip
        assert call(method, path, {})[0] == 401


def test_a_reply_with_placeholders_left_is_not_sent(desk):
    request = {"draft_id": uuid.uuid4().hex, "text": "Ihre Nummer: {customer_number}",
               "sender": "lena"}  # fmt: skip
    status, answer = call("POST", "/api/results/m9/send", request)
    assert status == 400 and "{customer_number}" in answer["message"]
    assert sending.outbox(ARTIFACTS) == []


@pytest.fixture
def endpoint(sagemaker, trained_job, monkeypatch):
    """The deployed model, whose embeddings rank the replies to similar e-mails."""
    monkeypatch.setenv("POSTWERK_ENDPOINT_NAME", "replies-endpoint")
    with endpoint_serving(sagemaker, trained_job, "replies-endpoint"):
        yield


def test_a_sent_reply_is_suggested_for_a_similar_email_with_its_facts_swapped(desk, endpoint):
    """...by the deployed model's embeddings; after a promotion the index is stale (another
    model's vectors) and suggests none, until it is built again from the pairs."""
    text = f"Dear {desk[3].sender_name},\n\nwe will send an engineer tomorrow.\n\nKind regards"
    request = {"draft_id": uuid.uuid4().hex, "text": text, "sender": "lena"}
    assert call("POST", "/api/results/m9/send", request)[0] == 200
    german = {"draft_id": uuid.uuid4().hex, "text": "Guten Tag, wir kommen.", "sender": "jo"}
    assert call("POST", "/api/results/m0/send", german)[0] == 200  # the index grows (If-Match)
    similar = next(e for e in generate(count=28, seed=5) if e.label == "complaint"
                   and e.language == "en" and e.sender_name != desk[3].sender_name)  # fmt: skip
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=to_eml(similar))
    # the same result now points at a similar e-mail from someone else
    _, answer = call("GET", "/api/results/m9/suggestions")
    sent = similar_replies(answer)
    assert sent and sent[0]["text"].startswith(f"Dear {similar.sender_name},")
    assert desk[3].sender_name not in sent[0]["text"]
    assert all("Guten Tag" not in s["text"] for s in sent), "English e-mails get English"
    index_key = index_store.index_key("complaint")
    index = index_store.for_bucket(ARTIFACTS).load("complaint")[0]
    assert "@" in index.model and index.vectors.shape[0] == 2
    index.model = "an-older-model@1"
    boto3.client("s3").put_object(Bucket=ARTIFACTS, Key=index_key, Body=index.to_bytes())
    status, answer = call("GET", "/api/results/m9/suggestions")
    assert status == 200 and similar_replies(answer) == [] and "an-older-model@1" in answer["note"]
    assert [s["title"] for s in answer["suggestions"]] == [ENGLISH[0]], "templates still come"
    assert reindex.reindex(ARTIFACTS, "replies-endpoint") == ({"complaint": 2}, 0)
    _, answer = call("GET", "/api/results/m9/suggestions")
    assert similar_replies(answer)[0]["text"] == sent[0]["text"] and answer["note"] == ""


def store_samples(emails: list) -> None:
    """Each sample e-mail stored raw, with a result of its own category (`s<n>`)."""
    table = boto3.resource("dynamodb").Table(TABLE)
    for number, sample in enumerate(emails):
        key = f"incoming/s{number}.eml"
        boto3.client("s3").put_object(Bucket=RAW, Key=key, Body=to_eml(sample))
        table.put_item(Item={
            "schema": "classification.v1", "message_id": f"s{number}", "label": sample.label,
            "score": Decimal("0.9"), "top_k": [], "needs_review": False,
            "model": {"name": "n", "version": "v"}, "classified_at": datetime.now(UTC).isoformat(),
            "input": {"subject": sample.subject, "language": sample.language, "length": 9,
                      "source": {"bucket": RAW, "key": key, "sha256": "0" * 64}},
        })  # fmt: skip


def test_the_example_templates_answer_every_sample_category_in_both_languages(stored):
    emails = generate(count=len(CATEGORIES) * len(LANGUAGES), seed=1)
    assert {(e.label, e.language) for e in emails} == set(product(CATEGORIES, LANGUAGES))
    store_samples(emails)
    assert call("GET", "/api/results/s0/suggestions")[1]["suggestions"] == [], "none yet"
    assert len(examples.seed(ARTIFACTS)) == len(emails)
    for number, sample in enumerate(emails):
        status, answer = call("GET", f"/api/results/s{number}/suggestions")
        assert status == 200 and answer["language"] == sample.language
        [suggestion] = answer["suggestions"]
        assert suggestion["source"] == f"template:example-{sample.label}-{sample.language}@1"
        assert suggestion["title"].startswith(examples.TITLE[sample.language])
        assert suggestion["text"].startswith(("Guten Tag ", "Dear "))


def test_examples_are_seeded_once_never_over_what_staff_changed_or_removed(stored):
    assert len(examples.seed(ARTIFACTS)) == len(CATEGORIES) * len(LANGUAGES)
    _, listed = call("GET", "/api/templates")
    edited = next(t for t in listed["templates"] if t["template_id"] == "example-complaint-de")
    changed = {**{k: edited[k] for k in ("category", "language", "body")},
               "title": "Unsere Antwort", "author": "lena"}  # fmt: skip
    assert call("PUT", "/api/templates/example-complaint-de", changed)[0] == 200
    s3 = boto3.client("s3")
    removed = s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=f"{TEMPLATES}example-other-en/")
    for item in removed["Contents"]:  # staff removed it from the bucket
        s3.delete_object(Bucket=ARTIFACTS, Key=item["Key"])
    assert examples.seed(ARTIFACTS) == [], "seeded once: nothing comes back"
    s3.delete_object(Bucket=ARTIFACTS, Key=examples.SEEDED)  # asked for them again
    assert [t.template_id for t in examples.seed(ARTIFACTS)] == ["example-other-en"]
    kept = templates.latest(ARTIFACTS, "example-complaint-de")
    assert kept.version == 2 and kept.title == "Unsere Antwort", "staff's version stays"
