"""Shared fixtures: a tiny BERT and tiny labelled e-mails, so training takes seconds."""

import fcntl
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from emulation.ministack import MiniStack
from postwerk import samples
from tests.jobs import TOPICS, free_port, lay_out_job, make_emails, run_train


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder of the test run, built by the first xdist worker that asks for it while the
    others wait: what takes seconds to make is made once, not once per worker."""
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # the workers' folders lie side by side in it
    folder, built = run_root / name, run_root / f"{name}.built"
    with (run_root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT with hidden size 32 and a word vocabulary built from the templates."""
    return once_per_run(tmp_path_factory, "tiny-bert", build_tiny_bert)


def build_tiny_bert(folder: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

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


@pytest.fixture(scope="session")
def trained_job(tiny_bert, tmp_path_factory) -> Path:
    """One finished training job (with a test channel), shared by tests that only read it."""

    def train(folder: Path) -> None:
        channels = {"train": make_emails(60, seed=1), "test": make_emails(15, seed=2)}
        lay_out_job(folder / "ml", tiny_hyperparameters(tiny_bert), channels)
        result = run_train(folder / "ml")
        assert result.returncode == 0, result.stdout + result.stderr

    return once_per_run(tmp_path_factory, "trained-job", train) / "ml"


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
