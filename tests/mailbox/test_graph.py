"""The Graph door (services/mailbox/graph_door.py) against a small Microsoft Graph that
answers in Graph's recorded shapes (tests/support/graph.py) and the embedded AWS: every
message stored once, raw, under the IMAP door's keys, acted on only after, nothing lost or
doubled across a kill, an expired delta token, throttling; a refused token is one line."""

import hashlib
import io
import json
import signal
import subprocess
import sys
import time

import boto3
import pytest

from services.mailbox import door, graph_door, state
from services.mailbox.door import SES_SIZE_LIMIT, fetch_all, fetch_once, recorded
from services.mailbox.watch import Watcher
from tests.support.dovecot import message
from tests.support.mailbox import arrives, graph_mailbox, stored, subjects


def page_size(monkeypatch, size: int) -> None:
    monkeypatch.setattr("services.mailbox.graph.BATCH_MESSAGES", size)


def test_new_messages_are_stored_raw_once_then_marked_read(graph, buckets):
    sent = [message(1), message(2), message(3, message_id=False)]
    graph.deliver(*sent)
    mailbox = graph_mailbox(graph)

    first = fetch_once(mailbox, buckets)
    again = fetch_once(mailbox, buckets)

    objects = stored(buckets)
    assert sorted(objects.values()) == sorted(sent)  # raw and unchanged
    by_message_id = f"incoming/mailbox-{hashlib.sha256(b'm1@example.org').hexdigest()}"
    assert by_message_id in objects  # the IMAP door's key: either door, one object
    assert (first.stored, first.duplicates, again.stored, again.duplicates) == (3, 0, 0, 0)
    assert all(m.is_read for m in graph.in_folder("inbox"))
    link = state.checkpoints(buckets.artifacts, "support").deltas["inbox"]
    assert "$deltatoken=" in link
    assert len(graph.asked("GET", "$value")) == 3  # the second fetch downloads nothing


def test_a_delta_round_is_followed_across_its_next_links(graph, buckets, monkeypatch):
    page_size(monkeypatch, 2)
    graph.deliver(*(message(n) for n in range(5)))
    mailbox = graph_mailbox(graph)

    tally = fetch_once(mailbox, buckets)
    graph.deliver(message(5), message(6), message(7))
    later = fetch_once(mailbox, buckets)

    rounds = graph.asked("GET", "/messages/delta")
    assert ["$skiptoken" in r.path for r in rounds[:3]] == [False, True, True]
    assert "$deltatoken" in rounds[3].path and "$skiptoken" in rounds[4].path
    assert all("odata.maxpagesize=2" for _ in rounds)
    assert (tally.stored, later.stored, later.duplicates) == (5, 3, 0)
    assert subjects(stored(buckets)) == [f"Rechnung {n}" for n in range(8)]


def test_out_of_time_the_page_is_counted_as_backlog_and_read_again(graph, buckets):
    graph.deliver(message(1), message(2))
    mailbox = graph_mailbox(graph)

    out_of_time = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets, deadline=0))
    done = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert (out_of_time.stored, out_of_time.backlog) == (0, 2)
    assert (done.stored, done.backlog) == (2, 0)


def test_a_kill_between_store_and_mark_read_then_a_restart_stores_each_message_once(graph, buckets):
    graph.deliver(message(1), message(2), message(3))
    state.save_mailbox(buckets.artifacts, graph_mailbox(graph))
    graph.hold_on = "PATCH"  # marking read: the messages are stored by now
    command = [sys.executable, "-m", "services.mailbox", "--once"]  # buckets: from the env
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        assert graph.held.wait(60), "the door never came to mark a message read"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    assert len(stored(buckets)) == 3
    assert not any(m.is_read for m in graph.in_folder())
    assert state.checkpoints(buckets.artifacts, "support").deltas == {}
    graph.hold_on = ""
    graph.released.set()

    restarted = subprocess.run(command, timeout=120, check=False)

    assert restarted.returncode == 0
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 2", "Rechnung 3"]
    health = state.health(buckets.artifacts, "support")
    assert (health.stored, health.duplicates) == (0, 3)
    assert all(m.is_read for m in graph.in_folder())


def test_an_expired_delta_token_reads_the_folder_again_without_duplicates(graph, buckets):
    graph.deliver(message(1), message(2, message_id=False))
    mailbox = graph_mailbox(graph)
    fetch_once(mailbox, buckets)
    graph.deliver(message(3))
    graph.expire_delta_tokens()

    tally = fetch_once(mailbox, buckets)
    after = fetch_once(mailbox, buckets)

    gone = [r for r in graph.requests if r.status == 410]
    assert len(gone) == 1 and "$deltatoken" in gone[0].path
    assert (tally.stored, tally.duplicates) == (1, 2)
    assert (after.stored, after.duplicates) == (0, 0)
    assert len(graph.asked("PATCH")) == 3  # those read already are not marked read again
    assert len(graph.asked("GET", "$value")) == 4  # again: only the one without a Message-ID
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 2", "Rechnung 3"]
    assert "$deltatoken=" in state.checkpoints(buckets.artifacts, "support").deltas["inbox"]


def test_throttling_is_waited_out_as_long_as_graph_asks(graph, buckets):
    graph.deliver(message(1), message(2))
    graph.throttle(1)

    tally = fetch_once(graph_mailbox(graph), buckets)

    assert tally.stored == 2
    throttled = next(i for i, r in enumerate(graph.requests) if r.status == 429)
    retried = graph.requests[throttled + 1]
    assert retried.path == graph.requests[throttled].path
    assert retried.at - graph.requests[throttled].at >= 1.0


def test_a_retry_after_beyond_the_fetch_is_the_next_fetchs_to_wait(graph, buckets):
    graph.deliver(message(1))
    graph.throttle(600)
    mailbox = graph_mailbox(graph)

    health = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert health.last_error.startswith("throttled: HTTP 429 ApplicationThrottled")
    assert 590 < (health.retry_after - health.last_error_at).total_seconds() <= 600
    assert len(graph.requests) == 1 and stored(buckets) == {}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_one_clear_line_and_a_health_record(graph, buckets, monkeypatch, status):
    logs = io.StringIO()
    monkeypatch.setattr(door.logger.registered_handler, "stream", logs)
    graph.deliver(message(1))
    graph.refuse(status)
    state.save_mailbox(buckets.artifacts, graph_mailbox(graph))

    first = fetch_all(buckets, time.monotonic() + 60)
    second = fetch_all(buckets, time.monotonic() + 60)  # within the backoff: no new try

    _, health = first["support"]
    code = {401: "InvalidAuthenticationToken", 403: "ErrorAccessDenied"}[status]
    assert health.login_refused and health.failures == 1
    assert health.last_error.startswith(f"login refused: Microsoft Graph: HTTP {status} {code}")
    assert second["support"][1] == health
    assert len(graph.requests) == 1  # no retry storm
    [line] = logs.getvalue().splitlines()
    assert f'"mailbox support: login refused: Microsoft Graph: HTTP {status}' in line
    assert stored(buckets) == {}


@pytest.mark.parametrize("action", ["keep", "move", "delete"])
def test_what_happens_to_a_stored_message_is_the_mailbox_owners_choice(graph, buckets, action):
    graph.deliver(message(1), message(2))
    done = graph.create_folder("Erledigt")
    settings = {"action": action, "move_to": done if action == "move" else ""}

    tally = fetch_once(graph_mailbox(graph, **settings), buckets)

    assert tally.stored == 2
    left, moved, deleted = (graph.in_folder(f) for f in ("inbox", done, "deleteditems"))
    expected = {"keep": (2, 0, 0), "move": (0, 2, 0), "delete": (0, 0, 2)}[action]
    assert (len(left), len(moved), len(deleted)) == expected
    assert all(m.is_read for m in left)
    assert fetch_once(graph_mailbox(graph, **settings), buckets).stored == 0


def test_a_message_over_40_mb_is_set_aside_with_its_header_and_left_in_the_mailbox(graph, buckets):
    huge = message(2, body="x" * 76 + "\n") + b"y" * (SES_SIZE_LIMIT + 1024)
    [_, huge_id, _] = graph.deliver(message(1), huge, message(3))

    tally = fetch_once(graph_mailbox(graph), buckets)

    assert (tally.stored, tally.set_aside) == (2, 1)
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 3"]
    s3 = boto3.client("s3")
    rejected = s3.list_objects_v2(Bucket=buckets.raw, Prefix="rejected/mailbox/support/")
    [key, reason_key] = sorted(o["Key"] for o in rejected["Contents"])
    explained = json.loads(s3.get_object(Bucket=buckets.raw, Key=reason_key)["Body"].read())
    assert f"{len(huge)} bytes, over SES's limit" in explained["reason"]
    assert explained["graph_id"] == huge_id and explained["key"] == key
    header = s3.get_object(Bucket=buckets.raw, Key=key)["Body"].read()
    assert b"Subject: Rechnung 2" in header and b"yyyy" not in header
    read = {m.id: m.is_read for m in graph.in_folder()}
    assert read.pop(huge_id) is False and all(read.values())


def test_a_message_graph_cannot_give_is_set_aside_and_the_rest_goes_on(graph, buckets, monkeypatch):
    ids = graph.deliver(message(1), message(2))
    answer = graph.mailbox

    def broken(method, parts, *rest):
        if parts[-1:] == ["$value"] and parts[1] == ids[0]:
            return 500, {}, {"error": {"code": "ErrorCorruptData", "message": "corrupt"}}
        return answer(method, parts, *rest)

    monkeypatch.setattr(graph, "mailbox", broken)

    tally = fetch_once(graph_mailbox(graph), buckets)

    assert (tally.stored, tally.set_aside) == (1, 1)
    s3 = boto3.client("s3")
    [reason] = [
        o["Key"] for o in s3.list_objects_v2(Bucket=buckets.raw, Prefix="rejected/")["Contents"]
    ]
    explained = json.loads(s3.get_object(Bucket=buckets.raw, Key=reason)["Body"].read())
    assert explained["reason"] == (
        "the server could not read it: HTTP 500 ErrorCorruptData: corrupt"
    )


def test_the_watcher_polls_a_graph_mailbox(graph, buckets):
    mailbox = graph_mailbox(graph, poll_seconds=1)
    watcher = Watcher(mailbox, buckets).start()
    try:
        graph.deliver(message(1))
        assert arrives(buckets, 1, within=15)
        graph.deliver(message(2))
        assert arrives(buckets, 2, within=15)
    finally:
        watcher.stop(timeout=10)
    assert not watcher.thread.is_alive()
    assert isinstance(watcher.door, graph_door.GraphDoor)


def test_postwerk_mailbox_add_graph_and_the_scheduled_function_reads_it(graph, buckets):
    from typer.testing import CliRunner

    from postwerk.cli import app
    from services.mailbox import handler
    from tests.support.lambdas import LambdaContext

    def postwerk(*arguments: str):
        return CliRunner().invoke(app, list(arguments))

    common = ["--user", "support@contoso.com", "--secret", "env:POSTWERK_TEST_MAILBOX_SECRET"]
    without_tenant = postwerk("mailbox", "add", "support", "--graph", *common)
    added = postwerk(
        *("mailbox", "add", "support", "--graph", *common, "--graph-url", graph.url),
        *("--tenant", "contoso.onmicrosoft.com", "--client-id", "postwerk-door"),
    )
    no_host = postwerk("mailbox", "add", "other", *common)
    listed = postwerk("mailbox", "list")
    [mailbox] = state.mailboxes(buckets.artifacts)
    state.save_mailbox(  # Entra ID: the local identity provider
        buckets.artifacts, mailbox.model_copy(update={"authority": graph.identity.url})
    )
    graph.deliver(message(1), message(2))

    answer = handler.handler({}, LambdaContext(remaining_ms=30_000))

    assert without_tenant.exit_code == 2 and "tenant" in without_tenant.output
    assert added.exit_code == 0, added.output
    assert "through Microsoft Graph" in added.output
    assert no_host.exit_code == 2 and "needs its server" in no_host.output
    assert "Microsoft" in listed.output and "mark" in listed.output  # the cells wrap
    assert (mailbox.kind, mailbox.auth, mailbox.folders) == ("graph", "microsoft", ["inbox"])
    assert answer == {"support": {"stored": 2, "backlog": 0, "error": ""}}
    assert all(m.is_read for m in graph.in_folder())


def test_a_folder_that_is_not_there_fails_the_fetch_before_anything_is_moved(graph, buckets):
    graph.deliver(message(1))
    reads_nowhere = graph_mailbox(graph, folders=["Kundenanfragen"])
    moves_nowhere = graph_mailbox(graph, action="move", move_to="Erledigt")

    reading = recorded(reads_nowhere, buckets, lambda: fetch_once(reads_nowhere, buckets))
    moving = recorded(moves_nowhere, buckets, lambda: fetch_once(moves_nowhere, buckets))

    assert reading.last_error == (
        "GraphError: HTTP 404 ErrorItemNotFound: no folder 'Kundenanfragen' in the mailbox: "
        "The specified object was not found in the store."
    )
    assert moving.last_error.startswith("GraphError: HTTP 404 ErrorItemNotFound: no folder")
    assert len(stored(buckets)) == 1  # stored, not moved: the next fetch moves it
    assert len(graph.in_folder("inbox")) == 1 and graph.asked("POST") == []


def test_a_wrong_client_secret_is_refused_by_entra_id(graph, buckets, monkeypatch):
    monkeypatch.setenv("POSTWERK_TEST_MAILBOX_SECRET", "not-the-secret")
    graph.deliver(message(1))
    mailbox = graph_mailbox(graph)

    health = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert health.login_refused
    assert health.last_error == (
        "login refused: Microsoft Entra ID: AADSTS7000215: Invalid client secret provided."
    )
    assert graph.requests == []


def test_at_most_four_requests_at_a_time_as_outlook_allows(graph, buckets):
    graph.deliver(*(message(n) for n in range(40)))

    tally = fetch_once(graph_mailbox(graph), buckets)

    assert tally.stored == 40
    assert graph.most_in_flight == 4
    assert [r for r in graph.requests if r.status == 429] == []


def test_a_crash_before_a_page_is_checkpointed_reads_it_again_storing_nothing_twice(
    graph, buckets, monkeypatch
):
    page_size(monkeypatch, 2)
    graph.deliver(*(message(n) for n in range(5)))
    mailbox = graph_mailbox(graph)
    advance = state.advance_delta
    checkpoints = []

    def crash_on_the_second(*arguments):
        if len(checkpoints) == 1:
            raise SystemExit("killed")
        checkpoints.append(arguments[-1])
        return advance(*arguments)

    monkeypatch.setattr(state, "advance_delta", crash_on_the_second)
    with pytest.raises(SystemExit):
        fetch_once(mailbox, buckets)
    monkeypatch.setattr(state, "advance_delta", advance)
    assert "$skiptoken=" in state.checkpoints(buckets.artifacts, "support").deltas["inbox"]
    assert len(stored(buckets)) == 4

    tally = fetch_once(mailbox, buckets)

    assert (tally.stored, tally.duplicates) == (1, 2)  # the second page again, then the third
    assert subjects(stored(buckets)) == [f"Rechnung {n}" for n in range(5)]
    assert all(m.is_read for m in graph.in_folder())
