"""Lay out an /opt/ml tree like SageMaker does, and run the training container on it."""

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from emulation.processes import free_port

ROOT = Path(__file__).resolve().parents[2]

TOPICS = {
    "billing": [
        ("Question about my invoice", "The invoice for March shows a wrong amount, please check."),
        ("Rechnung falsch", "Meine Rechnung vom März hat einen falschen Betrag."),
        ("Payment charged twice", "You charged my card twice for the same invoice."),
    ],
    "cancellation": [
        ("Cancel my contract", "Please cancel my contract at the end of the month."),
        ("Kündigung", "Hiermit kündige ich meinen Vertrag fristgerecht."),
        ("Terminate subscription", "I want to terminate my subscription and cancel."),
    ],
    "feedback": [
        ("Great service", "Thank you, the technician was friendly and fast. Great service!"),
        ("Danke", "Vielen Dank für den tollen Service, sehr zufrieden."),
        ("Happy customer", "I am very happy with your service, thanks a lot."),
    ],
}
LABELS = sorted(TOPICS)


def make_emails(count: int, seed: int) -> list[dict]:
    """Labelled e-mails from the templates, with random filler so they are not identical."""
    rng = random.Random(seed)
    filler = ["hello", "regards", "best", "hallo", "grüße", "team", "today", "please"]
    emails = []
    for i in range(count):
        label = LABELS[i % len(LABELS)]
        subject, body = rng.choice(TOPICS[label])
        extra = " ".join(rng.choices(filler, k=rng.randint(0, 6)))
        emails.append({"subject": subject, "body": f"{body} {extra}", "label": label})
    return emails


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def lay_out_job(
    base: Path,
    hyperparameters: dict,
    channels: dict[str, list[dict]],
    content_types: dict[str, str] | None = None,
    hosts: list[str] | None = None,
) -> Path:
    """hyperparameters.json with string values (as SageMaker writes it), the channel files
    as JSON Lines, inputdataconfig.json and resourceconfig.json."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    strings = {name: str(value) for name, value in hyperparameters.items()}
    (config / "hyperparameters.json").write_text(json.dumps(strings))
    content_types = content_types or {}
    data_config = {
        channel: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        | ({"ContentType": content_types[channel]} if channel in content_types else {})
        for channel in channels
    }
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    hosts = hosts or ["algo-1"]
    resources = {"current_host": hosts[0], "hosts": hosts, "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    for channel, records in channels.items():
        write_jsonl(base / "input" / "data" / channel / f"{channel}.jsonl", records)
    return base


def run_train(base: Path, **environment) -> subprocess.CompletedProcess:
    """`python -m model train` as SageMaker would start it, relocated to `base`."""
    env = os.environ | {"SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"} | environment
    return subprocess.run(
        [sys.executable, "-m", "model", "train"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextmanager
def serving(base: Path, **environment) -> Iterator[str]:
    """`python -m model serve` on a free port; yields its URL once /ping answers 200."""
    port = free_port()
    env = os.environ | {
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "POSTWERK_BIND_HOST": "127.0.0.1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "model", "serve"], cwd=ROOT, env=env | environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ping_ok(url):
            assert server.poll() is None, f"server exited with {server.returncode}"
            assert time.monotonic() < deadline, "server did not answer /ping within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def ping_ok(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
