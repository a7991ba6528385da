"""The local SES receiving endpoint (emulation/smtp.py) against MiniStack: what it accepts,
what it refuses with which SMTP code, and that a 250 means the message is stored."""

import json
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import boto3
import pytest
from typer.testing import CliRunner

from emulation import smtp
from emulation.processes import HOST, free_port
from postwerk.cli import app

BUCKET = "raw-smtp-tests"
TO = "support@postwerk.localhost"


def make_message(subject: str = "Rechnung doppelt") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "kunde@example.org"
    message["To"] = TO
    message["Subject"] = subject
    message["Message-ID"] = "<abc@example.org>"
    message.set_content("Sie haben mir die Rechnung zweimal geschickt.")
    return message


def create_bucket() -> None:
    boto3.client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )


def stored() -> list[bytes]:
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=smtp.PREFIX).get("Contents", [])
    return [s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing]


@pytest.fixture
def server(aws):
    """The server writing to BUCKET, on a free port."""
    create_bucket()
    port = free_port()
    controller = smtp.start(port, smtp.DEFAULT_RECIPIENTS, lambda: BUCKET)
    yield port
    controller.stop()


def test_an_accepted_message_is_stored_with_ses_headers_before_the_250(server):
    with smtplib.SMTP(HOST, server, timeout=30) as client:
        client.send_message(make_message())  # returns once the 250 came
    [raw] = stored()
    received = BytesParser(policy=policy.default).parsebytes(raw)
    assert received["Return-Path"] == "<kunde@example.org>"
    assert "by inbound-smtp.eu-central-1.amazonaws.com with SMTP id" in received["Received"]
    assert received["X-SES-Spam-Verdict"] == "GRAY"
    assert received["Message-ID"] == "<abc@example.org>"
    assert "zweimal" in received.get_content()


def test_relaying_is_refused_as_ses_does(server):
    with (
        smtplib.SMTP(HOST, server, timeout=30) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        client.sendmail("kunde@example.org", ["someone@elsewhere.example"], b"Subject: x\r\n")
    [(code, _)] = refused.value.recipients.values()
    assert code == 550
    assert stored() == []


def test_a_message_over_the_ses_limit_is_refused_with_552(server):
    with smtplib.SMTP(HOST, server, timeout=30) as client:
        client.ehlo()
        assert int(client.esmtp_features["size"]) == smtp.SES_SIZE_LIMIT
        code, _ = client.mail("kunde@example.org", [f"SIZE={smtp.SES_SIZE_LIMIT + 1}"])
    assert code == 552


def test_data_that_is_no_message_gets_554(server):
    with (
        smtplib.SMTP(HOST, server, timeout=30) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail("kunde@example.org", [TO], b"\x00\x01 not a message at all")
    assert refused.value.smtp_code == 554
    assert stored() == []


def test_a_garbled_dialogue_gets_errors_and_the_server_keeps_serving(server):
    with socket.create_connection((HOST, server), timeout=30) as raw:
        raw.recv(1024)  # the greeting
        raw.sendall(b"\xff\xfe\x00garbage\r\nDATA\r\nRCPT TO:<>\r\n" + b"A" * 5000 + b"\r\n")
        time.sleep(0.5)
        replies = raw.recv(4096).decode(errors="replace")
    assert replies.startswith("5") and "250" not in replies
    with smtplib.SMTP(HOST, server, timeout=30) as client:
        client.send_message(make_message())
    assert len(stored()) == 1


def test_without_a_stack_mail_is_deferred_with_451(aws):
    port = free_port()
    controller = smtp.start(port, smtp.DEFAULT_RECIPIENTS, smtp.StackBucket("no-such-stack"))
    try:
        with (
            smtplib.SMTP(HOST, port, timeout=30) as client,
            pytest.raises(smtplib.SMTPDataError) as deferred,
        ):
            client.send_message(make_message())
    finally:
        controller.stop()
    assert deferred.value.smtp_code == 451


@pytest.fixture
def stack(aws):
    """A stack whose RawBucket output names BUCKET, as the pipeline's stack does."""
    template = {
        "Resources": {
            "RawBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}}
        },
        "Outputs": {"RawBucket": {"Value": {"Ref": "RawBucket"}}},
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="smtp-test", TemplateBody=json.dumps(template))
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName="smtp-test", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return "smtp-test"


def test_a_message_acknowledged_is_kept_when_the_server_is_killed_right_after(stack):
    """The standalone server finds the raw bucket in the stack's outputs; SIGKILL right
    after the 250 loses nothing."""
    port = free_port()
    command = [sys.executable, "-m", "emulation.smtp", "--port", str(port), "--stack-name", stack]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().startswith("SMTP on")
        with smtplib.SMTP(HOST, port, timeout=30) as client:
            client.send_message(make_message())
            server.send_signal(signal.SIGKILL)
    finally:
        server.kill()
        server.wait(30)
    assert len(stored()) == 1


def test_postwerk_send_smtp_mails_through_the_server(stack, tmp_path, monkeypatch):
    port = free_port()
    controller = smtp.start(port, smtp.DEFAULT_RECIPIENTS, smtp.StackBucket(stack))
    monkeypatch.setenv("POSTWERK_STACK_NAME", stack)
    monkeypatch.setenv("POSTWERK_SMTP_PORT", str(port))
    monkeypatch.setenv("POSTWERK_STATE_DIR", str(tmp_path / "state"))
    long_lines = make_message()
    long_lines.set_content("Die Rechnung kam zweimal.\n" * 100)  # over SMTP's 1,000 per line
    (tmp_path / "a.eml").write_bytes(bytes(long_lines))  # LF line ends, as files have
    try:
        result = CliRunner().invoke(app, ["send", "--smtp", str(tmp_path / "a.eml")])
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    assert f"mailed 1 e-mail(s) to {TO}" in result.output
    [raw] = stored()
    assert raw.startswith(b"Return-Path: <kunde@example.org>")
