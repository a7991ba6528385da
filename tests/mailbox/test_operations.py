"""Operating the mailbox door: `postwerk mailbox add/list/status/remove`, the scheduled
function's run and metrics, and the template parameter that deploys it on AWS."""

import io
import json
from datetime import timedelta

from typer.testing import CliRunner

from postwerk.cli import app
from postwerk.deploy import stack_settings
from postwerk.settings import CliSettings
from services.mailbox import handler, state
from tests.support.dovecot import message
from tests.support.lambdas import LambdaContext
from tests.support.mailbox import SECRET_VARIABLE, stored


def postwerk(*arguments: str):
    return CliRunner().invoke(app, list(arguments))


def add_arguments(dovecot) -> list[str]:
    return [
        *("mailbox", "add", "support", "--host", "127.0.0.1", "--port", str(dovecot.imaps_port)),
        *("--user", "support", "--secret", f"env:{SECRET_VARIABLE}", "--folder", "INBOX"),
    ]


def test_mailboxes_are_added_listed_shown_and_removed(dovecot, buckets, monkeypatch):
    refused = postwerk(*add_arguments(dovecot)[:-4], "--secret", "hunter2")
    added = postwerk(*add_arguments(dovecot), "--action", "move", "--move-to", "Erledigt")
    listed = postwerk("mailbox", "list")
    waiting = postwerk("mailbox", "status")
    dovecot.deliver(message(1))
    monkeypatch.setenv(SECRET_VARIABLE, "wrong")
    failing = handler.handler({}, LambdaContext(remaining_ms=30_000))
    shown = postwerk("mailbox", "status")
    removed = postwerk("mailbox", "remove", "support")

    assert refused.exit_code == 2 and "never the secret" in refused.output
    assert "hunter2" not in refused.output
    assert added.exit_code == 0, added.output
    assert "support" in listed.output and "Erledigt" in listed.output  # "move to" it
    assert waiting.exit_code == 0 and "not fetched yet" in waiting.output
    assert failing["support"]["error"].startswith("login refused")
    assert shown.exit_code == 1 and "failing since" in shown.output
    assert "AUTHENTICATIONFAILED" in shown.output
    assert removed.exit_code == 0 and state.mailboxes(buckets.artifacts) == []
    assert postwerk("mailbox", "remove", "support").exit_code == 2


def test_the_scheduled_function_fetches_every_mailbox_and_reports_its_metrics(
    dovecot, buckets, monkeypatch
):
    metrics = io.StringIO()
    monkeypatch.setattr("sys.stdout", metrics)  # the embedded metric format goes to stdout
    assert postwerk(*add_arguments(dovecot)).exit_code == 0
    dovecot.deliver(message(1), message(2))

    answer = handler.handler({}, LambdaContext(remaining_ms=30_000))

    assert answer == {"support": {"stored": 2, "backlog": 0, "error": ""}}
    assert len(stored(buckets)) == 2
    [emf] = [json.loads(line) for line in metrics.getvalue().splitlines() if "_aws" in line]
    assert (emf["MailboxesOverdue"], emf["MailboxLoginsRefused"]) == ([0.0], [0.0])
    assert emf["service"] == "mailbox"


def test_the_door_is_deployed_on_aws_only_when_a_schedule_is_chosen():
    chosen = CliSettings(mailbox_schedule="rate(1 minute)")
    assert stack_settings(chosen, on_aws=True)["MailboxSchedule"] == "rate(1 minute)"
    assert "MailboxSchedule" not in stack_settings(chosen, on_aws=False)  # locally: make up
    assert "MailboxSchedule" not in stack_settings(CliSettings(), on_aws=True)


def test_a_mailbox_without_a_good_fetch_for_its_alarm_time_is_overdue_everywhere(
    dovecot, buckets, monkeypatch
):
    metrics = io.StringIO()
    monkeypatch.setattr("sys.stdout", metrics)
    assert postwerk(*add_arguments(dovecot), "--alarm-after", "15").exit_code == 0
    now = state.now()
    waiting = state.Health(  # a good fetch 20 minutes ago, then failures: in its backoff now
        watched_since=now - timedelta(hours=1),
        last_attempt_at=now - timedelta(minutes=1),
        last_success_at=now - timedelta(minutes=20),
        retry_after=now + timedelta(minutes=5),
    )
    state.save_health(buckets.artifacts, "support", waiting)

    handler.handler({}, LambdaContext(remaining_ms=30_000))
    shown = postwerk("mailbox", "status")

    [emf] = [json.loads(line) for line in metrics.getvalue().splitlines() if "_aws" in line]
    assert emf["MailboxesOverdue"] == [1.0]
    assert shown.exit_code == 1 and "overdue: no fetch for over 15 minutes" in shown.output
