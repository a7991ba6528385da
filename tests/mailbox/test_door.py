"""The mailbox door against a real Dovecot and the embedded AWS: every message stored once
in the raw bucket's incoming/, acted on only after, and nothing lost or doubled across
restarts, kills, dropped connections and renumbered folders."""

import json

import boto3
import pytest

from services.mailbox import state
from services.mailbox.door import SES_SIZE_LIMIT, fetch_once, recorded, rejected_key
from tests.support.aws import read_stream
from tests.support.dovecot import message
from tests.support.lambdas import LambdaContext, s3_event, sqs_event
from tests.support.mailbox import flags_in, mailbox_of, stored, subjects


def test_each_message_is_stored_raw_once_then_flagged(dovecot, buckets):
    sent = [message(1), message(2), message(3, message_id=False)]
    dovecot.deliver(*sent)
    mailbox = mailbox_of(dovecot)

    first = fetch_once(mailbox, buckets)
    again = fetch_once(mailbox, buckets)

    objects = stored(buckets)
    assert sorted(objects.values()) == sorted(raw.replace(b"\n", b"\r\n") for raw in sent)
    assert all(key.startswith("incoming/mailbox-") for key in objects)
    assert (first.stored, first.duplicates, again.stored) == (3, 0, 0)
    assert all(rb"\Seen" in flags for flags in flags_in(dovecot).values())
    checkpoint = state.checkpoints(buckets.artifacts, "support").folders["INBOX"]
    assert checkpoint.last_uid == 3


@pytest.mark.parametrize("action", ["keep", "move", "delete"])
def test_what_happens_to_a_stored_message_is_the_mailbox_owners_choice(dovecot, buckets, action):
    dovecot.deliver(message(1), message(2))
    with dovecot.client() as client:
        client.create_folder("Erledigt")
    settings = {"action": action, "move_to": "Erledigt" if action == "move" else ""}

    tally = fetch_once(mailbox_of(dovecot, **settings), buckets)

    assert tally.stored == 2
    left, moved = flags_in(dovecot), flags_in(dovecot, "Erledigt")
    expected = {
        "keep": (2, 0, rb"\Seen"),
        "move": (0, 2, None),
        "delete": (0, 0, None),
    }[action]
    assert (len(left), len(moved)) == expected[:2]
    assert all(expected[2] in flags for flags in left.values())


def test_a_non_ascii_folder_is_read_and_checkpointed_by_its_name(dovecot, buckets):
    dovecot.deliver(message(1), folder="Kundenanfragen.Ärger")  # "." is Dovecot's separator

    tally = fetch_once(mailbox_of(dovecot, folders=["Kundenanfragen.Ärger"]), buckets)

    assert tally.stored == 1 and subjects(stored(buckets)) == ["Rechnung 1"]
    assert dovecot.maildir("Kundenanfragen.Ärger").name == ".Kundenanfragen.&AMQ-rger"
    checkpoints = state.checkpoints(buckets.artifacts, "support").folders
    assert list(checkpoints) == ["Kundenanfragen.Ärger"]
    assert all(rb"\Seen" in f for f in flags_in(dovecot, "Kundenanfragen.Ärger").values())


def test_a_changed_uidvalidity_reads_the_folder_again_without_duplicates(dovecot, buckets):
    dovecot.deliver(message(1), message(2), message(3, message_id=False))
    mailbox = mailbox_of(dovecot)
    fetch_once(mailbox, buckets)
    before = state.checkpoints(buckets.artifacts, "support").folders["INBOX"]
    dovecot.terminate()  # the server loses its UID list: it numbers the messages anew
    for index in [dovecot.maildir() / "dovecot-uidlist", *dovecot.maildir().glob("dovecot.index*")]:
        index.unlink()
    dovecot.launch()
    dovecot.deliver(message(4))

    tally = fetch_once(mailbox, buckets)

    after = state.checkpoints(buckets.artifacts, "support").folders["INBOX"]
    assert after.uidvalidity != before.uidvalidity
    assert (tally.stored, tally.duplicates) == (1, 3)
    assert subjects(stored(buckets)) == [f"Rechnung {n}" for n in (1, 2, 3, 4)]


def test_a_backlog_of_1000_is_fetched_in_bounded_batches_and_the_rest_counted(dovecot, buckets):
    from services.mailbox.credentials import login_for
    from services.mailbox.door import BATCH_MESSAGES, batches
    from services.mailbox.imap import Session

    dovecot.deliver(*(message(n) for n in range(1000)))
    mailbox = mailbox_of(dovecot)
    session = Session(mailbox, login_for(mailbox))
    session.open("INBOX")
    uids = session.uids_after(0)
    parts = list(batches(session.sizes, uids))
    session.close()
    assert max(len(batch) for _, batch in parts) == BATCH_MESSAGES
    assert [uid for _, batch in parts for uid in batch] == uids == list(range(1, 1001))

    out_of_time = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets, deadline=0))
    assert (out_of_time.stored, out_of_time.backlog) == (0, 1000)
    done = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))
    assert (done.stored, done.backlog) == (1000, 0)
    assert len(stored(buckets)) == 1000


def test_bytes_that_are_no_email_are_stored_for_ingest_to_reject_and_the_rest_goes_on(
    dovecot, buckets, monkeypatch
):
    from services import ingest

    dovecot.deliver(message(1), b"just a line of text, no header at all\r\n", message(2))
    boto3.client("kinesis").create_stream(StreamName="emails", ShardCount=1)
    monkeypatch.setenv("POSTWERK_EMAILS_STREAM", "emails")

    tally = fetch_once(mailbox_of(dovecot), buckets)

    keys = sorted(stored(buckets))
    answer = ingest.handler(sqs_event(json.dumps(s3_event(buckets.raw, *keys))), LambdaContext())
    assert tally.stored == 3 and answer == {"batchItemFailures": []}
    assert len(read_stream("emails")) == 2
    s3 = boto3.client("s3")
    [reason] = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=buckets.raw, Prefix="rejected/")["Contents"]
        if o["Key"].endswith(".reason.json")
    ]
    explained = json.loads(s3.get_object(Bucket=buckets.raw, Key=reason)["Body"].read())
    assert "does not start with a header line" in explained["reason"]
    assert all(rb"\Seen" in flags for flags in flags_in(dovecot).values())


def test_a_message_over_40_mb_is_set_aside_with_its_header_and_left_in_the_mailbox(
    dovecot, buckets
):
    huge = message(2, body="x" * 76 + "\n") + b"y" * (SES_SIZE_LIMIT + 1024)
    dovecot.deliver(message(1), huge, message(3))

    tally = fetch_once(mailbox_of(dovecot), buckets)

    assert (tally.stored, tally.set_aside) == (2, 1)
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 3"]
    s3 = boto3.client("s3")
    uidvalidity = state.checkpoints(buckets.artifacts, "support").folders["INBOX"].uidvalidity
    key = rejected_key("support", "INBOX", uidvalidity, 2)
    reason = s3.get_object(Bucket=buckets.raw, Key=f"{key}.reason.json")["Body"].read()
    explained = json.loads(reason)
    assert "over SES's limit" in explained["reason"] and explained["uid"] == 2
    assert b"Subject: Rechnung 2" in s3.get_object(Bucket=buckets.raw, Key=key)["Body"].read()
    flags = flags_in(dovecot)
    assert rb"\Seen" not in flags[2] and rb"\Seen" in flags[1] and rb"\Seen" in flags[3]


def test_a_message_the_server_cannot_read_is_set_aside_and_the_rest_goes_on(dovecot, buckets):
    dovecot.deliver(message(1), message(2), message(3))
    flags_in(dovecot)  # the server has indexed them (sizes included)
    [unreadable] = [
        p for p in (dovecot.maildir() / "new").iterdir() if b"Rechnung 2" in p.read_bytes()
    ]
    unreadable.chmod(0)

    tally = fetch_once(mailbox_of(dovecot), buckets)

    assert (tally.stored, tally.set_aside) == (2, 1)
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 3"]
    s3 = boto3.client("s3")
    [reason] = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=buckets.raw, Prefix="rejected/mailbox/")["Contents"]
    ]
    explained = json.loads(s3.get_object(Bucket=buckets.raw, Key=reason)["Body"].read())
    # Dovecot drops the connection over it (* BYE FETCH failed: Internal error occurred)
    assert explained["reason"].startswith("the server closed the connection reading it, twice")
    assert "FETCH failed" in explained["reason"]
    assert explained["uid"] == 2 and explained["key"] == ""


def test_starttls_upgrades_the_connection_before_the_login(dovecot, buckets):
    dovecot.deliver(message(1))

    tally = fetch_once(mailbox_of(dovecot, security="starttls", port=dovecot.port), buckets)

    assert tally.stored == 1
    door_login = [line for line in dovecot.log().splitlines() if "Login:" in line][-1]
    assert ", TLS, " in door_login  # Dovecot's mark of a session that TLS protects
