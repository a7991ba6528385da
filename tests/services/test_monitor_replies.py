"""The monitor keeps the reply-suggestion index current: its own promotion does not wait for
the endpoint, so a later run, once the endpoint serves, rebuilds an index that holds another
model's vectors; a current index is left alone, and a failing endpoint never fails the run.
Against the fake endpoint of tests/support/reply_index.py."""

import io
import json

import boto3
import numpy as np
import pytest

from postwerk.samples import generate, to_eml
from services import clients, monitor
from services.replies import index_store, sending
from services.replies.index import PROBE, Entry, Index
from tests.support.lambdas import LambdaContext
from tests.support.reply_index import ENDPOINT, Endpoint, index_state
from tests.support.review import ARTIFACTS, RAW, call, similar_replies

RUN = {"window_hours": 48}


def suggestions_for_a_similar_email(desk) -> dict:
    """m9's suggestions once its raw e-mail is a similar complaint from someone else."""
    similar = next(e for e in generate(count=28, seed=5) if e.label == "complaint"
                   and e.language == "en" and e.sender_name != desk[3].sender_name)  # fmt: skip
    boto3.client("s3").put_object(Bucket=RAW, Key="incoming/9.eml", Body=to_eml(similar))
    status, answer = call("GET", "/api/results/m9/suggestions")
    assert status == 200
    return answer


def test_after_a_model_switch_a_run_rebuilds_the_stale_index(desk, fake_endpoint):
    leftover = Index().add("old@1", np.ones(4, np.float32) / 2, Entry("x", "de", "Hallo."))
    boto3.client("s3").put_object(
        Bucket=ARTIFACTS, Key=index_store.index_key("other"), Body=leftover.to_bytes()
    )  # no pair to rebuild it from
    fake_endpoint.model = "n@2"  # the monitor's promotion has come through
    before = suggestions_for_a_similar_email(desk)
    assert similar_replies(before) == [] and "n@1" in before["note"], "stale: templates only"

    answer = monitor.handler(RUN, LambdaContext())
    assert answer["status"] == "ok" and answer["report"]["results"] == 4
    assert answer["actions"] == ["reply index rebuilt for model n@2: complaint 2"]
    index, _ = index_store.for_bucket(ARTIFACTS).load("complaint")
    assert index.model == "n@2" and index.vectors.shape == (2, 64)
    assert index_state("complaint")[0] and index_state("complaint")[1] == (), "one index"
    assert index_state("other") == (None, ()), "never comparable: removed, not rebuilt each run"
    after = suggestions_for_a_similar_email(desk)
    [reply] = similar_replies(after)
    assert after["note"] == "" and reply["text"].startswith("Dear ")
    assert desk[3].sender_name not in reply["text"], "the similar e-mail's sender is greeted"

    fake_endpoint.embedded.clear()
    assert monitor.handler(RUN, LambdaContext())["actions"] == [], "the next run: current"
    assert fake_endpoint.embedded == [PROBE]


def test_a_run_with_a_current_index_embeds_one_probe_and_rebuilds_nothing(fake_endpoint):
    state = index_state("complaint")
    answer = monitor.handler(RUN, LambdaContext())
    assert answer["status"] == "ok" and answer["actions"] == []
    assert index_state("complaint") == state
    assert fake_endpoint.embedded == [PROBE], "no e-mail/reply pair is embedded again"


def test_no_index_no_endpoint_call(stored, monkeypatch):
    fake, real = Endpoint("n@1"), clients.client
    fake.refusing = "describe_endpoint"
    monkeypatch.setattr(clients, "client", lambda name, **options: fake
                        if name.startswith("sagemaker") else real(name, **options))  # fmt: skip
    assert monitor.handler(RUN, LambdaContext())["actions"] == []
    assert fake.embedded == []


@pytest.mark.parametrize("refusing", ["describe_endpoint", "invoke_endpoint"])
def test_a_failing_endpoint_leaves_the_report_and_says_why(fake_endpoint, monkeypatch, refusing):
    logs = io.StringIO()
    monkeypatch.setattr(monitor.logger.registered_handler, "stream", logs)
    fake_endpoint.model, fake_endpoint.refusing = "n@2", refusing
    state = index_state("complaint")
    answer = monitor.handler(RUN, LambdaContext())
    assert answer["status"] == "ok" and answer["report"]["results"] == 4
    s3 = boto3.client("s3")
    assert s3.head_object(Bucket=ARTIFACTS, Key=f"{answer['report_prefix']}/report.json")
    [action] = answer["actions"]
    assert action.startswith("reply index not refreshed (") and action.endswith(
        "run `postwerk reindex-replies`"
    )
    assert f"Could not find endpoint {ENDPOINT}." in action
    assert index_state("complaint") == state
    logged = [json.loads(line) for line in logs.getvalue().splitlines()]
    warning = next(line for line in logged if line["message"] == "reply index not refreshed")
    assert warning["error"] == "ClientError" and ENDPOINT in warning["reason"]
    assert "engineer" not in logs.getvalue(), "no reply or e-mail text in the logs"


def test_while_the_endpoint_updates_the_index_is_not_checked(fake_endpoint):
    fake_endpoint.model, fake_endpoint.status = "n@2", "Updating"
    state = index_state("complaint")
    answer = monitor.handler(RUN, LambdaContext())
    assert answer["actions"] == [f"reply index not checked: endpoint {ENDPOINT} is Updating"]
    assert fake_endpoint.embedded == [], "either fleet could answer: no probe"
    assert index_state("complaint") == state


def test_out_of_time_the_run_stops_the_rebuild_and_says_so(fake_endpoint):
    fake_endpoint.model = "n@2"
    state = index_state("complaint")
    short = LambdaContext(remaining_ms=monitor.RETURN_MARGIN_S * 1000)  # no time to spare
    answer = monitor.handler(RUN, short)
    assert answer["status"] == "ok"
    assert answer["actions"] == [
        "reply index not refreshed (out of time after reading 0 of "
        "2 e-mail/reply pairs): run `postwerk reindex-replies`"
    ]
    assert index_state("complaint") == state and fake_endpoint.embedded == [PROBE]


def test_only_the_stale_categories_are_built_anew(fake_endpoint):
    """A run cut short by its time goes on from there: the categories already current are
    not embedded again."""
    pair = {"message_id": "b1", "label": "billing", "language": "en", "subject": "Invoice QX7",
            "body": "Invoice QX7 is wrong.", "reply": "We correct it.",
            "reusable_reply": "We correct it.", "sender": "lena", "automatic": False}  # fmt: skip
    s3 = boto3.client("s3")
    s3.put_object(Bucket=ARTIFACTS, Key=f"{sending.PAIRS}b1/d1.json", Body=json.dumps(pair))
    fake_endpoint.model = "n@2"
    entry = Entry("b1", "en", "We correct it.")
    current = Index().add("n@2", fake_endpoint.vector("Invoice QX7"), entry)
    assert index_store.for_bucket(ARTIFACTS).write("billing", current, None)
    billing = index_state("billing")
    answer = monitor.handler(RUN, LambdaContext())
    assert answer["actions"] == ["reply index rebuilt for model n@2: complaint 2"]
    assert index_state("billing") == billing
    assert fake_endpoint.embedded[0] == PROBE
    assert len(fake_endpoint.embedded) == 3  # the probe and complaint's two
    assert not any("QX7" in text for text in fake_endpoint.embedded)
