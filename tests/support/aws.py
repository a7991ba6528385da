"""Plugin: the embedded AWS backend (MiniStack), one for the whole run and clean for each
test that asks for `aws`."""

import json
from pathlib import Path

import boto3
import pytest

from emulation.ministack import MiniStack
from emulation.processes import free_port
from tests.support.run_folders import once_per_run


@pytest.fixture(scope="session")
def ministack_venv(tmp_path_factory) -> Path:
    """MiniStack's venv, installed once for all of the run's xdist workers (each install
    takes 10-30 s); a state folder gets it with `with_ministack_venv`."""
    folder = once_per_run(tmp_path_factory, "ministack", lambda it: MiniStack(it, 0).install())
    return MiniStack(folder, 0).venv


def with_ministack_venv(state_dir: Path, venv: Path) -> Path:
    (state_dir / "ministack-venv").symlink_to(venv, target_is_directory=True)
    return state_dir


@pytest.fixture(scope="session")
def ministack(tmp_path_factory, ministack_venv) -> MiniStack:
    """One embedded AWS backend for the whole run (starting it takes about a second)."""
    state_dir = with_ministack_venv(tmp_path_factory.mktemp("postwerk-state"), ministack_venv)
    backend = MiniStack(state_dir, free_port())
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def aws(ministack: MiniStack, monkeypatch) -> MiniStack:
    """A clean AWS for each test: the backend is reset, and plain boto3 clients reach it, as
    do the functions' (services/clients.py makes theirs per environment: a test's endpoints
    hold)."""
    ministack.reset()
    for name, value in ministack.client_environment().items():
        monkeypatch.setenv(name, value)
    return ministack


def drain(url: str) -> list[dict]:
    """Every event in the queue, as EventBridge delivered it."""
    sqs, events = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        events += [json.loads(m["Body"]) for m in messages]
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                   for n, m in enumerate(messages)]  # fmt: skip
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return events


def read_stream(name: str) -> list[dict]:
    """The records of the stream's first shard, from its start."""
    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return kinesis.get_records(ShardIterator=iterator)["Records"]
