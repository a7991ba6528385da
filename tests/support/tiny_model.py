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


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_bert(folder: Path) -> None:
    from transformers import BertTokenizer

    texts = [f"{subject} {body}" for emails in TOPICS.values() for subject, body in emails]
    texts += [f"{e.subject} {e.body}" for e in samples.generate(**samples.TRAINING)]
    words = {word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower())}
    vocabulary = [*SPECIAL_TOKENS, *sorted(words)]
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocabulary)},
        strip_accents=False,
        model_max_length=128,
    )
    save_tiny_bert(folder, tokenizer)


def build_tiny_multilingual_bert(folder: Path, texts: list[str]) -> None:
    """Like a multilingual model's: a cased WordPiece vocabulary learnt from `texts` that
    keeps accents and umlauts (German words split into wordpieces, not [UNK]), and a
    tokenizer that gives no token_type_ids, as XLM-RoBERTa's does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=800, special_tokens=SPECIAL_TOKENS)
    wordpiece.train_from_iterator(texts, trainer)
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[(token, SPECIAL_TOKENS.index(token)) for token in ("[CLS]", "[SEP]")],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )  # fmt: skip
    save_tiny_bert(folder, tokenizer)


def save_tiny_bert(folder: Path, tokenizer) -> None:
    """A 2-layer BERT with hidden size 32 for `tokenizer`'s vocabulary, saved with it."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

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
        hyperparameters = tiny_hyperparameters(tiny_bert, quantize_int8="true")  # the int8 model
        lay_out_job(folder / "ml", hyperparameters, channels)
        result = run_train(folder / "ml")
        assert result.returncode == 0, result.stdout + result.stderr

    return once_per_run(tmp_path_factory, "trained-job", train) / "ml"


def tiny_hyperparameters(tiny_bert: Path, **overrides) -> dict:
    """Enough for the tiny BERT to learn the three topics in a couple of seconds; without the
    int8 model (3-5 s a job more), which trained_job has."""
    return {
        "model_name_or_path": str(tiny_bert),
        "epochs": 8,
        "learning_rate": 3e-3,
        "batch_size": 8,
        "early_stopping_patience": 0,
        "max_length": 64,
        "quantize_int8": "false",
        # the tests of the transformer's folder; tests/contract/test_model_selection.py
        # covers the default (best) and the linear model
        "model_selection": "transformer",
    } | overrides
