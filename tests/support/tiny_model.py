"""Plugin: a tiny BERT and a training job of it on tiny labelled e-mails, so that training
takes seconds."""

import re
from pathlib import Path

import pytest

from postwerk import samples
from tests.support.jobs import TOPICS, lay_out_job, make_emails, run_train
from tests.support.run_folders import once_per_run


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
        # the tests of the transformer's folder; tests/contract/test_model_selection.py
        # covers the default (best) and the linear model
        "model_selection": "transformer",
    } | overrides
