"""Shared fixtures: a tiny BERT and tiny labelled e-mails, so training takes seconds."""

import fcntl
import os
import re
from pathlib import Path

import pytest

from emulation.ministack import MiniStack
from postwerk import samples
from tests.jobs import TOPICS, free_port, lay_out_job, make_emails, run_train


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT with hidden size 32 and a word vocabulary built from the templates."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    texts = [f"{subject} {body}" for emails in TOPICS.values() for subject, body in emails]
    texts += [f"{e.subject} {e.body}" for e in samples.generate(**samples.TRAINING)]
    words = {word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())}
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocabulary)},
        strip_accents=False,
        model_max_length=128,
    )
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)  # the same tiny model in every run
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained_job(tiny_bert, tmp_path_factory) -> Path:
    """One finished training job (with a test channel), shared by tests that only read it."""
    base = tmp_path_factory.mktemp("trained") / "ml"
    lay_out_job(
        base,
        tiny_hyperparameters(tiny_bert),
        {"train": make_emails(60, seed=1), "test": make_emails(15, seed=2)},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    return base


def tiny_hyperparameters(tiny_bert: Path, **overrides) -> dict:
    """Enough for the tiny BERT to learn the three topics in a couple of seconds."""
    return {
        "model_name_or_path": str(tiny_bert),
        "epochs": 8,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "early_stopping_patience": 0,
        "max_length": 64,
    } | overrides


@pytest.fixture(scope="session")
def ministack_venv(tmp_path_factory) -> Path:
    """MiniStack's venv, installed once for all of the run's xdist workers (each install
    takes 10-30 s); a state folder gets it with `with_ministack_venv`."""
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # the workers' folders lie side by side in it
    shared = MiniStack(run_root / "shared-ministack", 0)
    with (run_root / "shared-ministack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait for the first install
        shared.install()
    return shared.venv


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
    """A clean AWS for each test: the backend is reset, and plain boto3 clients reach it."""
    ministack.reset()
    for name, value in ministack.client_environment().items():
        monkeypatch.setenv(name, value)
    return ministack
