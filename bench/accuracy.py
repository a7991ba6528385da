"""Accuracy on Banking77: fine-tune the bundled MiniLM with `python -m model train`, then
check the serving predictor in fp32 and int8 on the same test set.

Measures
- training (a subprocess, the SageMaker contract under bench/work/accuracy/ml): test accuracy
  and macro-F1 (all 3080 test e-mails, the trainer holds out its validation split from
  train), wall time, peak RSS of the training process;
- compared with the published reference: BERT-base fine-tuned on Banking77 reaches about
  92.8-93.1% test accuracy (Casanueva et al. 2020, "Efficient Intent Detection with Dual
  Sentence Encoders"); MiniLM-L6 is ~5x smaller;
- serving: model.serving.predictor.Predictor on the test set in fp32 and with int8 dynamic
  quantization: accuracy of each, the int8 - fp32 delta in points, and in-process
  throughput (texts/s, consecutive batches of 64). The fp32 pass is the baseline. Then
  OpenVINO: the fp32 IR in f32 against what serves by default (the int8 IR training wrote
  and checked, or fp32 where it did not pass; the row names the engine).

The trained model stays in bench/work/accuracy/ml/model for bench.serving.

On a CUDA machine the Predictor serves in fp16 whatever int8 asks (int8 is for CPUs), so both
predictor rows are the same fp16 model and the first includes CUDA's warm-up: read the
second (bench/results/accuracy-cuda.json).

Reproduce (from the repository root; minutes on a laptop CPU):
    python -m bench.accuracy --data ../shared/data/banking77
Smoke run:
    python -m bench.accuracy --data ../shared/data/banking77 --quick
"""

from pathlib import Path
from typing import Any

from bench.common import (
    LABEL,
    TEXT,
    Row,
    accuracy,
    add_training_flags,
    base_parser,
    finish,
    load_banking77,
    predictor_pass,
    print_table,
    shuffled,
    stratified_sample,
    train_with_postwerk,
    training_hyperparameters,
    work_dir,
)
from model.console import quiet_libraries

NAME = "accuracy"
REFERENCE_BERT_BASE_ACCURACY = (0.928, 0.931)
INFERENCE_BATCH = 64


def parse_args():
    parser = base_parser(__doc__)
    add_training_flags(parser, epochs=8)
    parser.add_argument("--early-stopping-patience", type=int, default=2)
    parser.add_argument("--validation-split", type=float, default=0.1)
    parser.add_argument("--train-rows", type=int, default=None, help="default: all")
    parser.add_argument("--test-rows", type=int, default=None, help="default: all")
    args = parser.parse_args()
    if args.quick:
        # 5 e-mails per label; 0.2 so that each label still gives one to validation.
        args.train_rows, args.test_rows = args.train_rows or 385, args.test_rows or 200
        args.epochs, args.validation_split = 1, 0.2
    return args


def hyperparameters(args) -> dict[str, Any]:
    return training_hyperparameters(
        args,
        early_stopping_patience=args.early_stopping_patience,
        validation_split=args.validation_split,
    )


def train(args, train_rows: list[Row], test_rows: list[Row]) -> tuple[Path, dict[str, Any]]:
    """Run `python -m model train`; returns the model folder and the training figures."""
    training = train_with_postwerk(
        work_dir(NAME) / "ml",
        hyperparameters(args),
        {"train": train_rows, "test": test_rows},
        log_path=work_dir(NAME) / "train.log",
    )
    return training.model_dir, {
        "test_accuracy": training.report["accuracy"],
        "test_macro_f1": training.report["macro_f1"],
        "epochs_run": len(training.epochs),
        "per_epoch": training.epochs,
        "wall_seconds": training.process.wall_seconds,
        "peak_rss_mb": training.process.peak_rss_mb,
    }


def evaluate_predictor(model_dir: Path, test_rows: list[Row], **engine) -> dict:
    """engine: Predictor's engine arguments (torch by default)."""
    from model.serving.predictor import Predictor

    predictor = Predictor(model_dir, INFERENCE_BATCH, **engine)
    rows = shuffled(test_rows, seed=0)  # test.csv is sorted by label; batches should mix
    inference = predictor_pass(predictor, [r[TEXT] for r in rows], INFERENCE_BATCH)
    return {
        "engine": predictor.engine.name,
        "accuracy": accuracy(inference.labels, [r[LABEL] for r in rows]),
        "texts_per_second": inference.texts_per_second(),
        "seconds": inference.seconds,
    }


def main() -> None:
    args = parse_args()
    quiet_libraries()
    all_train, all_test = load_banking77(args.data)
    train_rows = stratified_sample(all_train, args.train_rows, args.seed)
    test_rows = stratified_sample(all_test, args.test_rows, args.seed)
    print(f"fine-tuning on {len(train_rows)} train rows; testing on {len(test_rows)} rows")

    model_dir, training = train(args, train_rows, test_rows)
    fp32 = evaluate_predictor(model_dir, test_rows, quantize_int8=False)
    int8 = evaluate_predictor(model_dir, test_rows, quantize_int8=True)
    # OpenVINO: the fp32 IR in f32, and what serves by default (training's checked int8 IR)
    openvino = {
        "fp32": evaluate_predictor(model_dir, test_rows, engine="openvino", precision="fp32"),
        "default": evaluate_predictor(model_dir, test_rows, engine="openvino"),
    }
    openvino_delta_points = 100 * (openvino["default"]["accuracy"] - openvino["fp32"]["accuracy"])
    int8_delta_points = 100 * (int8["accuracy"] - fp32["accuracy"])
    int8_speedup = int8["texts_per_second"] / fp32["texts_per_second"]
    low, high = REFERENCE_BERT_BASE_ACCURACY

    print_table(
        "Banking77 test (python -m model train, bundled MiniLM-L6)",
        ["what", "accuracy", "macro-F1", "texts/s", "note"],
        [
            ("trainer's test report", training["test_accuracy"], training["test_macro_f1"],
             None, f"{training['epochs_run']} epochs, {training['wall_seconds']:.0f} s, "
             f"peak RSS {training['peak_rss_mb']:.0f} MB"),
            ("Predictor fp32 (baseline)", fp32["accuracy"], None, fp32["texts_per_second"],
             f"batch {INFERENCE_BATCH}"),
            ("Predictor int8 dynamic", int8["accuracy"], None, int8["texts_per_second"],
             f"{int8_delta_points:+.2f} points, x{int8_speedup:.2f} texts/s vs fp32"),
            *[(f"Predictor OpenVINO {name}", r["accuracy"], None, r["texts_per_second"],
               r["engine"]) for name, r in openvino.items()],
            ("reference: BERT-base", f"{low:.3f}-{high:.3f}", None, None, "published"),
        ],
    )  # fmt: skip
    print(
        f"\nratio vs reference: MiniLM {training['test_accuracy']:.4f} = "
        f"{training['test_accuracy'] / high:.3f}-{training['test_accuracy'] / low:.3f} "
        "of BERT-base's accuracy"
    )
    print(f"int8 vs fp32: {int8_delta_points:+.2f} accuracy points, x{int8_speedup:.2f} texts/s")
    print(f"OpenVINO default vs fp32 IR: {openvino_delta_points:+.2f} accuracy points")

    finish(
        NAME,
        {
            "data": {"train_rows": len(train_rows), "test_rows": len(test_rows)},
            "hyperparameters": hyperparameters(args),
            "training": training,
            "model_dir": str(model_dir),
            "predictor": {"batch_size": INFERENCE_BATCH, "fp32": fp32, "int8": int8},
            "openvino": openvino,
            "openvino_default_accuracy_delta_points": openvino_delta_points,
            "int8_accuracy_delta_points": int8_delta_points,
            "int8_speedup": int8_speedup,
            "reference": {
                "model": "BERT-base (Casanueva et al. 2020)",
                "test_accuracy": list(REFERENCE_BERT_BASE_ACCURACY),
            },
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
