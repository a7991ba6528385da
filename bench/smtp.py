"""Mail in by SMTP (emulation/smtp.py) against the S3-upload path, on MiniStack.

    python -m bench.smtp [--quick] [--sessions 200] [--emails 2000]

--sessions concurrent SMTP sessions (threads with smtplib, each one session) send --emails
messages in all; every message is checked to be in the raw bucket's incoming/ afterwards.
Latency is from the DATA command to the 250 reply, which the server sends only once the
message is stored: p50, p99, max. The baseline is the S3-upload path `postwerk send` takes
(put_object to incoming/) with the same number of threads and messages, in the same run:
e-mails/s of both and the ratio. Classification after incoming/ is the same for both paths
and is measured by bench.pipeline.
"""

import os
import smtplib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.message import EmailMessage

import boto3

from bench.common import base_parser, finish, print_table, work_dir
from emulation import smtp
from emulation.ministack import MiniStack
from emulation.processes import HOST, free_port

NAME = "smtp"
BUCKET = "bench-smtp-raw"
TO = "support@postwerk.localhost"


def message(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"kunde{n}@example.org"
    mail["To"] = TO
    mail["Subject"] = f"Rechnung {n} doppelt erhalten"
    mail["Message-ID"] = f"<bench-{n}@example.org>"
    mail.set_content("Sie haben mir die Rechnung zweimal geschickt.\n" * 40)
    return mail.as_bytes(policy=policy.SMTP)  # CRLF line ends, as SMTP sends them


def session(port: int, numbers: range) -> list[float]:
    """One SMTP session sending its share; the DATA -> 250 latencies."""
    latencies = []
    with smtplib.SMTP(HOST, port, timeout=300) as client:
        client.ehlo()
        for n in numbers:
            client.mail(f"kunde{n}@example.org")
            client.rcpt(TO)
            started = time.perf_counter()
            code, reply = client.data(message(n))
            if code != 250:
                raise RuntimeError(f"message {n}: {code} {reply!r}")
            latencies.append(time.perf_counter() - started)
    return latencies


def shares(emails: int, sessions: int) -> list[range]:
    step = -(-emails // sessions)
    return [range(start, min(start + step, emails)) for start in range(0, emails, step)]


def through_smtp(emails: int, sessions: int) -> dict:
    port = free_port()
    server = smtp.start(port, smtp.DEFAULT_RECIPIENTS, lambda: BUCKET)
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(sessions) as pool:
            latencies = [
                s
                for part in pool.map(lambda r: session(port, r), shares(emails, sessions))
                for s in part
            ]
        wall = time.perf_counter() - started
    finally:
        server.stop()
    latencies.sort()
    return {
        "emails_per_s": emails / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def through_s3(emails: int, threads: int) -> dict:
    s3 = boto3.client("s3")

    def upload(numbers: range) -> None:
        for n in numbers:
            s3.put_object(Bucket=BUCKET, Key=f"incoming/upload-{n}", Body=message(n))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(upload, shares(emails, threads)))
    return {"emails_per_s": emails / (time.perf_counter() - started)}


def stored(prefix: str) -> int:
    pages = (
        boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )
    return sum(len(page.get("Contents", [])) for page in pages)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--emails", type=int, default=2000)
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.emails = 10, 100
    backend = MiniStack(work_dir(NAME, clean=True), free_port())
    backend.start()
    try:
        os.environ.update(backend.client_environment())
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        baseline = through_s3(args.emails, args.sessions)
        uploaded = stored("incoming/upload-")
        mailed = through_smtp(args.emails, args.sessions)
        in_bucket = stored("incoming/") - uploaded
    finally:
        backend.stop()
    results = {
        "sessions": args.sessions,
        "emails": args.emails,
        "smtp": mailed | {"stored": in_bucket},
        "s3_upload": baseline | {"stored": uploaded},
        "smtp_over_upload": mailed["emails_per_s"] / baseline["emails_per_s"],
    }
    print_table(
        f"{args.emails} e-mails, {args.sessions} concurrent sessions/threads",
        ["path", "e-mails/s", "stored", "p50 ms", "p99 ms", "max ms"],
        [
            [
                "SMTP (DATA -> 250)",
                mailed["emails_per_s"],
                in_bucket,
                mailed["p50_ms"],
                mailed["p99_ms"],
                mailed["max_ms"],
            ],
            ["S3 upload (baseline)", baseline["emails_per_s"], uploaded, "", "", ""],
        ],
    )
    finish(NAME, results, args.quick)


if __name__ == "__main__":
    main()
