"""Long e-mails: how many tokens the model reads (max_length) and which ones of an e-mail
longer than that (long_text: its head, or its head and tail; model/data.py tokenize), by
accuracy and macro-F1 and by the serving cost, on the SpamAssassin corpus (real mail, many
e-mails longer than 256 tokens).

Each (max_length, long_text) pair trains `python -m model train` on the same split; then
the Predictor classifies the test e-mails in-process (torch engine, fp32, batches of 32, as
the endpoint's batcher hands them over), so the ms per e-mail are serving's, tokenization
included. Scores are given on the whole test split and on its long e-mails (over
--long-tokens tokens of the MiniLM tokenizer, where head and head_tail differ at every
max_length measured).

Reproduce (the corpus as bench/quality.py gets it):
    python -m bench.long_mail --dataset bench/work/corpora/package
Smoke run:
    python -m bench.long_mail --dataset bench/work/corpora/package --quick
"""

from pathlib import Path

import numpy as np

from bench.common import (
    LABEL,
    TEXT,
    Row,
    add_training_flags,
    base_parser,
    finish,
    predictor_pass,
    print_table,
    train_with_postwerk,
    training_hyperparameters,
    work_dir,
)
from bench.quality import load_dataset, prepare_splits, profile
from model.console import quiet_libraries
from model.evaluation import evaluation_report
from model.hyperparameters import bundled_model_path

NAME = "long_mail"
MAX_LENGTHS = (64, 128, 256)
MODES = ("head", "head_tail")
BATCH = 32


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--dataset", type=Path, required=True, help="the SpamAssassin corpus")
    add_training_flags(parser, epochs=3)
    parser.add_argument("--train-rows", type=int, default=600, help="stratified, before validation")
    parser.add_argument("--test-rows", type=int, default=400)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--long-tokens", type=int, default=256)
    parser.add_argument("--name", default=NAME)
    parser.set_defaults(labels=None, zipf=None, min_per_label=2)
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.test_rows, args.epochs = 60, 40, 1
    return args


def token_counts(texts: list[str]) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    return [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]


def scores(predicted: list[str], truth: list[str], labels: list[str]) -> dict[str, float]:
    index = {label: i for i, label in enumerate(labels)}
    report = evaluation_report(
        np.array([index[t] for t in truth]), np.array([index[p] for p in predicted]), labels
    )
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def run(args, splits: dict[str, list[Row]], max_length: int, mode: str, long: list[bool]) -> dict:
    """Train with this pair, then classify the test split as serving does."""
    from model.serving.predictor import Predictor

    hyperparameters = training_hyperparameters(args, max_length=max_length, long_text=mode)
    name = f"ml-{max_length}-{mode}"
    training = train_with_postwerk(
        work_dir(args.name) / name,
        hyperparameters,
        {split: splits[split] for split in ("train", "validation", "test")},
        log_path=work_dir(args.name) / f"{name}.log",
    )
    predictor = Predictor(training.model_dir, max_batch_size=BATCH, engine="torch")
    test = splits["test"]
    served = predictor_pass(predictor, [row[TEXT] for row in test], BATCH)
    truth, labels = [row[LABEL] for row in test], predictor.labels
    long_pairs = [
        (p, t) for p, t, is_long in zip(served.labels, truth, long, strict=True) if is_long
    ]
    return {
        "max_length": max_length,
        "long_text": mode,
        "test": scores(served.labels, truth, labels),
        "long_test": scores(*map(list, zip(*long_pairs, strict=True)), labels),
        "serving_ms_per_email": 1000 * served.seconds / len(test),
        "train_seconds": training.process.wall_seconds,
    }


def main() -> None:
    args = parse_args()
    quiet_libraries()
    splits = prepare_splits(args, load_dataset(args.dataset))
    lengths = token_counts([row[TEXT] for row in splits["test"]])
    long = [n > args.long_tokens for n in lengths]
    median, p90 = int(np.median(lengths)), int(np.percentile(lengths, 90))
    print(f"train {len(splits['train'])}, validation {len(splits['validation'])}, test "
          f"{len(lengths)} e-mails, {sum(long)} of them over {args.long_tokens} tokens; "
          f"test tokens: median {median}, p90 {p90}")  # fmt: skip
    runs = [run(args, splits, n, mode, long) for n in MAX_LENGTHS for mode in MODES]
    print_table(
        f"{args.dataset.name}: test ({len(lengths)} e-mails) and its long ones ({sum(long)})",
        ["max_length", "long_text", "accuracy", "macro-F1", "long acc.", "long macro-F1",
         "ms/e-mail"],
        [(r["max_length"], r["long_text"], r["test"]["accuracy"], r["test"]["macro_f1"],
          r["long_test"]["accuracy"], r["long_test"]["macro_f1"], r["serving_ms_per_email"])
         for r in runs],
    )  # fmt: skip
    finish(
        args.name,
        {
            "dataset": str(args.dataset),
            "splits": {name: profile(rows) for name, rows in splits.items()},
            "test_tokens": {"median": median, "p90": p90, "long": sum(long),
                            "long_tokens": args.long_tokens},
            "serving": {"engine": "torch fp32 (in-process Predictor)", "batch": BATCH},
            "runs": runs,
        },
        args.quick,
        module=NAME,
    )  # fmt: skip


if __name__ == "__main__":
    main()
