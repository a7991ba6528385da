"""Training speed: `python -m model train` against the Hugging Face `Trainer` (the baseline).

Both fine-tune the bundled MiniLM on the same stratified subset of Banking77 train (default
9000 rows, 2 epochs) with the same batch size, epochs, learning rate, warm-up, weight decay,
max_length and seed, each in its own subprocess, one after the other. Our trainer gets an
explicit validation channel (other train rows) so that it trains on exactly the same rows;
the Trainer runs without evaluation or saving during training (bench/hf_trainer.py).

Measures, for both: training samples/s (ours: its per-epoch `train_samples_per_second`, which
excludes validation; Trainer: its `train_samples_per_second`), wall time of the whole process
(start-up, tokenising, training, test prediction, writing the model/reports), peak RSS, and
accuracy / macro-F1 on the same test subset (default: all 3080 rows). Prints ours/Trainer ratios.

Reproduce (from the repository root):
    python -m bench.training --data ../shared/data/banking77
Smoke run:
    python -m bench.training --data ../shared/data/banking77 --quick
"""

import json
from typing import Any

from bench.common import (
    PYTHON,
    Row,
    add_training_flags,
    base_parser,
    check_run,
    finish,
    layout_job,
    load_banking77,
    print_table,
    run_tracked,
    stratified_sample,
    train_with_postwerk,
    training_hyperparameters,
    work_dir,
)
from bench.hf_trainer import RESULT_FILE

NAME = "training"


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--train-rows", type=int, default=9000)
    parser.add_argument("--validation-rows", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=3080)
    add_training_flags(parser, epochs=2)
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.validation_rows, args.test_rows = 200, 77, 100
    return args


def hyperparameters(args) -> dict[str, Any]:
    # no early stopping: the Trainer baseline runs every epoch too
    return training_hyperparameters(args, early_stopping_patience=0)


def split_data(args) -> dict[str, list[Row]]:
    """Disjoint train and validation subsets of Banking77 train; a test subset of test."""
    all_train, all_test = load_banking77(args.data)
    train = stratified_sample(all_train, args.train_rows, args.seed)
    taken = {id(row) for row in train}
    rest = [row for row in all_train if id(row) not in taken]
    validation = stratified_sample(rest, args.validation_rows, args.seed)
    return {
        "train": train,
        "validation": validation,
        "test": stratified_sample(all_test, args.test_rows, args.seed),
    }


def run_ours(args, channels: dict[str, list[Row]]) -> dict[str, Any]:
    training = train_with_postwerk(
        work_dir(NAME) / "ours", hyperparameters(args), channels, work_dir(NAME) / "ours.log"
    )
    rates = [epoch["train_samples_per_second"] for epoch in training.epochs]
    return {
        # every epoch sees the same number of samples: the overall rate is the harmonic mean
        "train_samples_per_second": len(rates) / sum(1 / rate for rate in rates),
        "wall_seconds": training.process.wall_seconds,
        "peak_rss_mb": training.process.peak_rss_mb,
        "test_accuracy": training.report["accuracy"],
        "test_macro_f1": training.report["macro_f1"],
    }


def run_trainer(args, channels: dict[str, list[Row]], base_model: str) -> dict[str, Any]:
    data = {name: channels[name] for name in ("train", "test")}
    base = layout_job(work_dir(NAME) / "hf", hyperparameters(args), data)
    run = run_tracked(
        [PYTHON, "-m", "bench.hf_trainer", "--job-dir", str(base), "--model", base_model],
        log_path=work_dir(NAME) / "hf.log",
    )
    check_run(run, "the Hugging Face Trainer baseline")
    result = json.loads((base / RESULT_FILE).read_text())
    return result | {"wall_seconds": run.wall_seconds, "peak_rss_mb": run.peak_rss_mb}


def bundled_model() -> str:
    from model.hyperparameters import bundled_model_path

    return bundled_model_path()


def main() -> None:
    args = parse_args()
    channels = split_data(args)
    sizes = {name: len(rows) for name, rows in channels.items()}
    print(f"subsets: {sizes}; {args.epochs} epoch(s), batch {args.batch_size}")

    ours = run_ours(args, channels)
    trainer = run_trainer(args, channels, bundled_model())
    speed_ratio = ours["train_samples_per_second"] / trainer["train_samples_per_second"]
    wall_ratio = ours["wall_seconds"] / trainer["wall_seconds"]
    accuracy_points = 100 * (ours["test_accuracy"] - trainer["test_accuracy"])

    columns = ["samples/s", "wall s", "peak RSS MB", "test acc", "test macro-F1"]
    keys = [
        "train_samples_per_second",
        "wall_seconds",
        "peak_rss_mb",
        "test_accuracy",
        "test_macro_f1",
    ]
    print_table(
        f"Training on {sizes['train']} Banking77 rows, test on {sizes['test']}",
        ["trainer", *columns],
        [
            ("HF Trainer (baseline)", *(trainer[k] for k in keys)),
            ("python -m model train", *(ours[k] for k in keys)),
        ],
    )
    print(
        f"\nours/Trainer: samples/s x{speed_ratio:.2f}, wall time x{wall_ratio:.2f}, "
        f"accuracy {accuracy_points:+.2f} points"
    )
    finish(
        NAME,
        {
            "data": sizes,
            "hyperparameters": hyperparameters(args),
            "ours": ours,
            "hf_trainer": trainer,
            "samples_per_second_ratio": speed_ratio,
            "wall_time_ratio": wall_ratio,
            "accuracy_difference_points": accuracy_points,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
