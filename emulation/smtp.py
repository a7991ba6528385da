"""The local stand-in for SES receiving: an SMTP server on 127.0.0.1 (aiosmtpd) that accepts
mail for the configured recipients only, enforces SES's 40 MB limit, adds the headers SES
adds and writes the raw message to the raw bucket's incoming/ prefix, as the template's
receipt rule does on AWS (docs/architecture.md 3.6). It answers 250 only once the message is stored;
while there is no stack (so no raw bucket) it answers 451, and a sender tries again later.

`python -m emulation.smtp --port 2525` runs it alone, in the foreground (Docker Compose runs
it so, with `--host 0.0.0.0`).
"""

import argparse
import asyncio
import re
import secrets
import signal
import smtplib
from collections.abc import Callable, Sequence
from email.parser import BytesHeaderParser
from email.utils import formatdate

import boto3
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from botocore.exceptions import BotoCoreError, ClientError

from emulation.processes import HOST

DEFAULT_PORT = 2525
DEFAULT_RECIPIENTS = ("postwerk.localhost",)  # a domain: every address in it
SES_SIZE_LIMIT = 40 * 1024 * 1024  # SES receiving's limit, headers included
PREFIX = "incoming/"
# SES's replies (https://docs.aws.amazon.com/ses/latest/dg/receiving-email-concepts.html)
RELAY_DENIED = "550 5.7.1 Relaying denied"  # no receipt rule covers the recipient
NOT_A_MESSAGE = "554 5.6.0 Message is not an RFC 5322 message"
TRY_LATER = "451 4.3.0 Temporary service failure, try again later"
BARE_LF = re.compile(rb"(?<!\r)\n")  # .eml files often end lines so; SMTP's lines end CRLF


def covers(recipients: Sequence[str], address: str) -> bool:
    """A receipt rule's recipients: an address matches itself, a domain every address in it
    (case does not matter, as in SES)."""
    address = address.lower()
    domain = address.rpartition("@")[2]
    return any(r.lower() in (address, domain) for r in recipients)


def ses_headers(envelope: Envelope, session: Session, message_id: str, region: str) -> bytes:
    """The trace headers SES puts on top of a received message. We scan nothing, so the
    verdicts say so: GRAY is SES's 'could not tell'."""
    lines = [
        f"Return-Path: <{envelope.mail_from}>",
        f"Received: from {session.host_name or 'unknown'} ({session.peer[0]})",
        f" by inbound-smtp.{region}.amazonaws.com with SMTP id {message_id}",
        f" for {envelope.rcpt_tos[0]};",
        f" {formatdate(usegmt=True)}",
        "X-SES-Spam-Verdict: GRAY",
        "X-SES-Virus-Verdict: GRAY",
        "Received-SPF: none (spfCheck: not checked locally)",
        "Authentication-Results: amazonses.com; spf=none; dkim=none; dmarc=none",
    ]
    return "".join(line + "\r\n" for line in lines).encode()


def looks_like_a_message(content: bytes) -> bool:
    """At least one header field: what a mail client sends, not a stray upload."""
    return len(BytesHeaderParser().parsebytes(content[:65536])) > 0


class StackBucket:
    """The raw bucket (or the bucket of another output), read from the stack's outputs when
    first needed (the stack is deployed after the local AWS starts); None while there is
    no stack."""

    def __init__(self, stack_name: str, output: str = "RawBucket"):
        self.stack_name = stack_name
        self.output = output
        self.bucket: str | None = None

    def __call__(self) -> str | None:
        if self.bucket is None:
            self.bucket = self.look_up()
        return self.bucket

    def look_up(self) -> str | None:
        try:
            stacks = boto3.client("cloudformation").describe_stacks(StackName=self.stack_name)
        except ClientError:  # ValidationError: no such stack (yet)
            return None
        outputs = stacks["Stacks"][0].get("Outputs", [])
        return next((o["OutputValue"] for o in outputs if o["OutputKey"] == self.output), None)


class Receiver:
    """aiosmtpd's handler: the receipt rule's recipient check and its S3 action."""

    def __init__(self, recipients: Sequence[str], bucket: Callable[[], str | None]):
        self.recipients = tuple(recipients)
        self.bucket = bucket
        self.s3 = boto3.client("s3")

    async def handle_RCPT(self, server: SMTP, session, envelope, address: str, options):
        if not covers(self.recipients, address):
            return RELAY_DENIED
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not looks_like_a_message(envelope.original_content):
            return NOT_A_MESSAGE
        message_id = secrets.token_hex(20)
        region = self.s3.meta.region_name
        raw = ses_headers(envelope, session, message_id, region) + envelope.original_content
        try:
            await asyncio.to_thread(self.store, f"{PREFIX}{message_id}", raw)
        except (BotoCoreError, ClientError, LookupError):
            return TRY_LATER
        return f"250 Ok {message_id}"

    def store(self, key: str, raw: bytes) -> None:
        bucket = self.bucket()
        if bucket is None:
            raise LookupError("no stack yet")
        self.s3.put_object(Bucket=bucket, Key=key, Body=raw)


class Refused(Exception):
    """The server did not take the message; the message holds its SMTP reply."""


def deliver(raw: bytes, port: int, sender: str, recipient: str) -> str:
    """Send one message as any MTA would; the key it was stored under in the raw bucket."""
    with smtplib.SMTP(HOST, port, timeout=120) as client:
        client.ehlo()
        expect(client.mail(sender), "MAIL FROM")
        expect(client.rcpt(recipient), "RCPT TO")
        reply = expect(client.data(BARE_LF.sub(b"\r\n", raw)), "DATA")
    return PREFIX + reply.split()[-1]  # "Ok <SES message id>"


def expect(answer: tuple[int, bytes], step: str) -> str:
    code, reply = answer
    if code != 250:
        raise Refused(f"{step}: {code} {reply.decode(errors='replace')}")
    return reply.decode()


def start(
    port: int, recipients: Sequence[str], bucket: Callable[[], str | None], host: str = HOST
) -> Controller:
    """The server in a thread of its own; stop it with .stop()."""
    controller = Controller(
        Receiver(recipients, bucket),
        hostname=host,
        port=port,
        data_size_limit=SES_SIZE_LIMIT,
        server_hostname="inbound-smtp.localhost",
        ident="postwerk local SES receiving",
    )
    controller.start()
    return controller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--recipients", default=",".join(DEFAULT_RECIPIENTS))
    parser.add_argument("--stack-name", default="postwerk")
    args = parser.parse_args()
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # the server's thread inherits it
    recipients = args.recipients.split(",")
    server = start(args.port, recipients, StackBucket(args.stack_name), args.host)
    print(f"SMTP on {args.host}:{args.port}", flush=True)
    signal.sigwait(stop_signals)
    server.stop()


if __name__ == "__main__":
    main()
