"""Every wait is bounded and, when its time is up, says what it waited for and how long:
botocore's own waiters (against the embedded backend's S3) and the paced loops of the CLI."""

import boto3
import pytest
import typer

from postwerk.output import handled
from services import waits


@pytest.fixture
def s3(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket="waits", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return s3


def test_a_waiter_returns_once_its_state_is_reached(s3):
    s3.put_object(Bucket="waits", Key="there", Body=b"x")
    waits.until(s3, "object_exists", "object there", 5, 0.1, Bucket="waits", Key="there")


def test_a_waiter_past_its_timeout_says_what_it_waited_for(s3):
    with pytest.raises(waits.TimedOut, match=r"^object never: not done after 0\.3 s$"):
        waits.until(s3, "object_exists", "object never", 0.3, 0.1, Bucket="waits", Key="never")


def test_a_paced_loop_past_its_timeout_says_what_it_waited_for():
    rounds = []
    with pytest.raises(waits.TimedOut, match=r"^tuning job t: not done after 0\.2 s$"):
        for number in waits.polls("tuning job t", 0.2, 0.05):
            rounds.append(number)
    assert 2 <= len(rounds) <= 5 and rounds == list(range(len(rounds)))


def test_a_command_that_timed_out_fails_with_its_reason_not_a_traceback(capsys):
    @handled
    def command() -> None:
        raise waits.TimedOut("endpoint e: not done after 3600 s")

    with pytest.raises(typer.Exit) as exited:
        command()
    assert exited.value.exit_code == 1
    assert "error: endpoint e: not done after 3600 s" in capsys.readouterr().out
