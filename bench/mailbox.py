"""`postwerk dataset build` on a large mailbox: e-mails/s and peak memory (target < 500 MB).

    python -m bench.mailbox [--quick] [--messages 50000] [--size-kb 20]

Generates Thunderbird-style mbox folders (one file per label, one message in three a reply
in its thread, each with a base64 PDF-like attachment so that the file reaches --messages x
--size-kb, 1 GB by default) under bench/work/mailbox/, then in a child process each:
- baseline: read the mbox files and parse each message with ingest's parser, nothing else;
- build: the whole `dataset.build` (read, parse, drop, thread-aware split, write, upload to
  MiniStack's S3, manifest, card).
Each child's peak resident memory comes from the kernel (getrusage of the waited child).
"""

import json
import mailbox
import os
import random
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import boto3

from bench.common import PYTHON, base_parser, finish, print_table, work_dir
from emulation.ministack import MiniStack
from emulation.processes import free_port

NAME = "mailbox"
BUCKET = "bench-mailbox-artifacts"
LABELS = ["Rechnungen", "Technik", "Kündigung", "Lieferung", "Lob"]
WORDS = [
    "Rechnung",
    "Vertrag",
    "Lieferung",
    "Paket",
    "Passwort",
    "Konto",
    "danke",
    "bitte",
    "heute",
    "morgen",
]


def message(n: int, label: str, size: int, rng: random.Random) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"kunde{n}@example.org"
    mail["To"] = "support@firma.example"
    mail["Subject"] = f"{label}: {' '.join(rng.choices(WORDS, k=5))}"
    mail["Message-ID"] = f"<mbox-{n}@example.org>"
    mail["Date"] = f"Tue, {1 + n % 28:02d} Apr 2024 09:{n % 60:02d}:00 +0200"
    if n % 3:
        mail["In-Reply-To"] = mail["References"] = f"<mbox-{n - n % 3}@example.org>"
    mail.set_content("\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(20)))
    padding = max(0, size - 2000) * 3 // 4  # base64 grows by 4/3
    mail.add_attachment(
        rng.randbytes(padding), maintype="application", subtype="pdf", filename="a.pdf"
    )
    return mail


def generate(folder: Path, messages: int, size: int, seed: int) -> int:
    """The mbox files; their total size in bytes."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    boxes = {label: mailbox.mbox(folder / label) for label in LABELS}
    for n in range(messages):
        label = LABELS[(n // 3) % len(LABELS)]  # a thread stays in its folder
        boxes[label].add(message(n, label, size, rng))
    for box in boxes.values():
        box.close()
    return sum(path.stat().st_size for path in folder.iterdir())


def child_baseline(folder: Path) -> dict:
    from postwerk.dataset import read_sources
    from services.mail import parse_email

    count = 0
    for found in read_sources([folder]):
        parse_email(found.raw, "", found.where)
        count += 1
    return {"emails": count}


def child_build(folder: Path) -> dict:
    from postwerk import dataset

    card = dataset.build([folder], "bench", dataset.Labels(), BUCKET)
    return {"emails": sum(sum(c.values()) for c in card.counts.values()), "dropped": card.dropped}


def run_child(kind: str, folder: Path) -> dict:
    """One pass in a fresh process: its result, wall time and peak RSS (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.mailbox", "--child", kind, "--folder", str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{kind} pass failed ({status})")
    wall = time.perf_counter() - started
    found = json.loads(output.splitlines()[-1])
    return found | {
        "wall_s": wall,
        "emails_per_s": found["emails"] / wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
    }


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--size-kb", type=int, default=20)
    parser.add_argument("--child", choices=["baseline", "build"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        run = child_baseline if args.child == "baseline" else child_build
        print(json.dumps(run(args.folder)))
        return
    if args.quick:
        args.messages = 300
    work = work_dir(NAME, clean=True)
    folder = work / "mail"
    total = generate(folder, args.messages, args.size_kb * 1024, args.seed)
    backend = MiniStack(work / "ministack", free_port())
    backend.start()
    try:
        os.environ.update(backend.client_environment())
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        baseline = run_child("baseline", folder)
        built = run_child("build", folder)
    finally:
        backend.stop()
    results = {
        "messages": args.messages,
        "mbox_bytes": total,
        "baseline_parse_only": baseline,
        "dataset_build": built,
        "build_over_parse": built["emails_per_s"] / baseline["emails_per_s"],
        "load_average": os.getloadavg(),
    }
    print_table(
        f"{args.messages} messages, {total / 1e9:.2f} GB of mbox",
        ["pass", "e-mails", "e-mails/s", "wall s", "peak RSS MB"],
        [
            [name, r["emails"], r["emails_per_s"], r["wall_s"], r["peak_rss_mb"]]
            for name, r in (("parse only (baseline)", baseline), ("dataset build", built))
        ],
    )
    finish(NAME, results, args.quick)


if __name__ == "__main__":
    sys.exit(main())
