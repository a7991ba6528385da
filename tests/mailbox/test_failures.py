"""The mailbox door when things go wrong: a kill between store and flag, a connection that
drops mid-fetch, a wrong password; and new mail arriving while it waits (IDLE, polling)."""

import io
import signal
import subprocess
import sys
import time

import pytest

from services.mailbox import door, state
from services.mailbox.door import fetch_all, fetch_once, recorded
from services.mailbox.watch import Watcher
from tests.support.dovecot import Dovecot, Proxy, message
from tests.support.mailbox import SECRET_VARIABLE, arrives, flags_in, mailbox_of, stored, subjects


@pytest.fixture
def proxy(dovecot):
    relay = Proxy(dovecot.port)
    yield relay
    relay.close()


def test_a_kill_between_store_and_flag_then_a_restart_stores_each_message_once(
    dovecot, buckets, proxy
):
    dovecot.deliver(message(1), message(2), message(3))
    mailbox = mailbox_of(dovecot, security="plain", port=proxy.port)
    state.save_mailbox(buckets.artifacts, mailbox)
    proxy.hold_on = b"STORE"  # the flag command: the messages are stored by now
    command = [sys.executable, "-m", "services.mailbox", "--once"]  # buckets: from the env
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        assert proxy.held.wait(60), "the door never came to flag"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(30)
    assert len(stored(buckets)) == 3
    assert not any(rb"\Seen" in flags for flags in flags_in(dovecot).values())
    proxy.hold_on = None

    restarted = subprocess.run(command, timeout=120, check=False)

    assert restarted.returncode == 0
    assert subjects(stored(buckets)) == ["Rechnung 1", "Rechnung 2", "Rechnung 3"]
    health = state.health(buckets.artifacts, "support")
    assert (health.stored, health.duplicates) == (0, 3)
    assert all(rb"\Seen" in flags for flags in flags_in(dovecot).values())


def test_a_connection_dropped_mid_fetch_loses_and_doubles_nothing(dovecot, buckets, proxy):
    dovecot.deliver(*(message(n, body=f"{n} " + "Text " * 200) for n in range(250)))
    mailbox = mailbox_of(dovecot, security="plain", port=proxy.port)
    proxy.cut_after = 150_000  # mid-way through the second batch of 100 (about 1.2 KB each)
    logins = dovecot.log().count("Login: user=<support>")

    health = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert dovecot.log().count("Login: user=<support>") == logins + 2, "it logged in again"
    assert (health.last_error, health.stored, health.set_aside) == ("", 250, 0)
    assert subjects(stored(buckets)) == sorted(f"Rechnung {n}" for n in range(250))
    assert all(rb"\Seen" in flags for flags in flags_in(dovecot).values())


def test_a_server_that_cannot_be_reached_is_a_recorded_failure_with_backoff(dovecot, buckets):
    dovecot.terminate()
    mailbox = mailbox_of(dovecot)

    health = recorded(mailbox, buckets, lambda: fetch_once(mailbox, buckets))

    assert health.last_error == "connection: ConnectionRefusedError: [Errno 111] Connection refused"
    assert health.failures == 1 and not health.login_refused
    assert health.retry_after > health.last_error_at  # backoff, not a retry storm


def test_a_refused_login_is_one_clear_line_and_backs_off(dovecot, buckets, monkeypatch):
    logs = io.StringIO()
    monkeypatch.setattr(door.logger.registered_handler, "stream", logs)
    monkeypatch.setenv(SECRET_VARIABLE, "not-the-password")
    dovecot.deliver(message(1))
    state.save_mailbox(buckets.artifacts, mailbox_of(dovecot))

    first = fetch_all(buckets, time.monotonic() + 60)
    second = fetch_all(buckets, time.monotonic() + 60)  # within the backoff: no new try

    _, health = first["support"]
    assert health.login_refused and health.failures == 1
    assert health.last_error == (
        "login refused: 127.0.0.1: [AUTHENTICATIONFAILED] Authentication failed."
    )
    assert second["support"][1] == health
    assert dovecot.log().count("auth failed") == 1
    [line] = logs.getvalue().splitlines()
    assert '"mailbox support: login refused: 127.0.0.1: [AUTHENTICATIONFAILED]' in line
    assert "not-the-password" not in line
    assert stored(buckets) == {}


def watching(mailbox, buckets) -> Watcher:
    """A watcher whose first fetch is done."""
    watcher = Watcher(mailbox, buckets).start()
    deadline = time.monotonic() + 30
    while state.health(buckets.artifacts, mailbox.name).last_success_at is None:
        assert time.monotonic() < deadline, state.health(buckets.artifacts, mailbox.name)
        time.sleep(0.1)
    return watcher


def test_mail_delivered_during_idle_is_stored_within_seconds(dovecot, buckets):
    dovecot.deliver(message(1))
    watcher = watching(mailbox_of(dovecot, poll_seconds=600), buckets)  # no poll in time
    try:
        dovecot.deliver(message(2))
        assert arrives(buckets, 2, within=15)
    finally:
        started = time.monotonic()
        watcher.stop(timeout=10)
    assert not watcher.thread.is_alive() and time.monotonic() - started < 5
    assert all(rb"\Seen" in flags for flags in flags_in(dovecot).values())


def test_without_idle_the_door_polls(ca, buckets):
    server = Dovecot(ca, idle=False).start()
    try:
        watcher = watching(mailbox_of(server, poll_seconds=1), buckets)
        try:
            server.deliver(message(1))
            assert arrives(buckets, 1, within=15)
        finally:
            watcher.stop(timeout=10)
    finally:
        server.stop()
