"""Mail in through the mailbox door (services/mailbox/) from a local Dovecot, against the
SMTP door (emulation/smtp.py) in the same run, on MiniStack.

    python -m bench.mailbox_door [--quick] [--messages 10000] [--samples 100]

Throughput: --messages e-mails waiting in one folder (delivered before the clock starts),
fetched and stored by one door (one IMAPS session, batches of 100, 8 concurrent puts) and
flagged; every one is checked to be in the raw bucket's incoming/ afterwards. The baseline
is the SMTP door taking the same e-mails from 8 concurrent sessions (as many as the door's
concurrent puts). Delay: --samples e-mails delivered one by one (IMAP APPEND, at random
moments) while the door watches, from the APPEND to the stored object appearing (looked
for every 10 ms): with IDLE, and polling every --poll-seconds on a server without IDLE.
"""

import os
import random
import statistics
import time

import boto3
import trustme
from botocore.exceptions import ClientError

from bench.common import base_parser, finish, print_table, work_dir
from bench.smtp import BUCKET as SMTP_BUCKET
from bench.smtp import message, through_smtp
from emulation.ministack import MiniStack
from emulation.processes import HOST, free_port
from services.mailbox import state
from services.mailbox.config import Mailbox
from services.mailbox.door import Buckets, Fetched, digest, fetch_once
from services.mailbox.watch import Watcher
from tests.support.dovecot import PASSWORD, Dovecot

NAME = "mailbox_door"
BUCKETS = Buckets(raw="bench-door-raw", artifacts="bench-door-artifacts")
SECRET_VARIABLE = "POSTWERK_BENCH_MAILBOX_SECRET"
SMTP_SESSIONS = 8


def mailbox(server: Dovecot, name: str, **settings) -> Mailbox:
    return Mailbox(
        name=name,
        host=HOST,
        port=server.imaps_port,
        user="support",
        secret=f"env:{SECRET_VARIABLE}",
        **settings,
    )


def throughput(server: Dovecot, messages: int) -> dict:
    batch = [message(n) for n in range(messages)]
    server.deliver(*batch)
    started = time.perf_counter()
    fetch_once(mailbox(server, "throughput"), BUCKETS)
    wall = time.perf_counter() - started
    return {"emails_per_s": messages / wall, "wall_s": wall, "stored": count("incoming/")}


def count(prefix: str, bucket: str = BUCKETS.raw) -> int:
    pages = (
        boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return sum(len(page.get("Contents", [])) for page in pages)


def delays(server: Dovecot, watched: Mailbox, samples: int, first: int, spread: float) -> dict:
    """Deliver one e-mail at a time to a watched mailbox, each after a random wait of up to
    `spread` seconds; seconds until it is stored."""
    watcher = Watcher(watched, BUCKETS).start()
    s3 = boto3.client("s3")
    measured = []
    try:
        wait_for_first_fetch(watched)
        for n in range(first, first + samples):
            time.sleep(random.uniform(0, spread))  # at any moment of the poll interval
            raw = message(n)
            key = stored_key(raw, n)
            delivered = time.perf_counter()
            server.deliver(raw)
            while not exists(s3, key):
                time.sleep(0.01)
            measured.append(time.perf_counter() - delivered)
    finally:
        watcher.stop()
    measured.sort()
    return {
        "samples": samples,
        "p50_s": statistics.median(measured),
        "p99_s": measured[int(0.99 * (len(measured) - 1))],
        "max_s": measured[-1],
    }


def stored_key(raw: bytes, n: int) -> str:
    """Where the door stores e-mail n (bench.smtp's Message-ID)."""
    header = f"Message-ID: <bench-{n}@example.org>\r\n".encode()
    return f"incoming/mailbox-{digest(Fetched(raw, header))}"


def wait_for_first_fetch(watched: Mailbox) -> None:
    while state.health(BUCKETS.artifacts, watched.name).last_success_at is None:
        time.sleep(0.05)


def exists(s3, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKETS.raw, Key=key)
    except ClientError:
        return False
    return True


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--poll-seconds", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.messages, args.samples = 200, 5
    folder = work_dir(NAME, clean=True)
    backend = MiniStack(folder, free_port())
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    os.environ |= {"SSL_CERT_FILE": str(folder / "ca.pem"), SECRET_VARIABLE: PASSWORD}
    servers = [Dovecot(ca), Dovecot(ca), Dovecot(ca, idle=False)]
    backend.start()
    try:
        os.environ.update(backend.client_environment())
        s3 = boto3.client("s3")
        for bucket in (BUCKETS.raw, BUCKETS.artifacts, SMTP_BUCKET):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
            )
        for server in servers:
            server.start()
        door = throughput(servers[0], args.messages)
        smtp = through_smtp(args.messages, SMTP_SESSIONS) | {
            "stored": count("incoming/", SMTP_BUCKET)
        }
        idle = delays(  # no poll within the run: what arrives came by IDLE
            servers[1],
            mailbox(servers[1], "idle", poll_seconds=600),
            args.samples,
            args.messages,
            1,
        )
        polled = delays(
            servers[2],
            mailbox(servers[2], "polling", poll_seconds=args.poll_seconds),
            args.samples,
            args.messages + args.samples,  # Message-IDs of their own: no duplicates
            args.poll_seconds,
        )
        load = os.getloadavg()
    finally:
        for server in servers:
            server.stop()
        backend.stop()
    results = {
        "messages": args.messages,
        "smtp_sessions": SMTP_SESSIONS,
        "poll_seconds": args.poll_seconds,
        "mailbox_door": door,
        "smtp": smtp,
        "door_over_smtp": door["emails_per_s"] / smtp["emails_per_s"],
        "delay_idle": idle,
        "delay_polling": polled,
        "load_average": list(load),
    }
    print_table(
        f"{args.messages} e-mails",
        ["path", "e-mails/s", "stored"],
        [
            ["mailbox door (one IMAPS session)", door["emails_per_s"], door["stored"]],
            [
                f"SMTP door, {SMTP_SESSIONS} sessions (baseline)",
                smtp["emails_per_s"],
                smtp["stored"],
            ],
        ],
    )
    print_table(
        f"delivery to stored object, {args.samples} e-mails each",
        ["door waits by", "p50 s", "p99 s", "max s"],
        [
            ["IDLE", idle["p50_s"], idle["p99_s"], idle["max_s"]],
            [
                f"polling every {args.poll_seconds} s",
                polled["p50_s"],
                polled["p99_s"],
                polled["max_s"],
            ],
        ],
    )
    finish(NAME, results, args.quick)


if __name__ == "__main__":
    main()
