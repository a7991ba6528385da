"""What every trained model gets, whichever its kind (model/fit.py's transformer,
model/selection.py's linear model): a temperature and review thresholds fitted on the
validation logits (calibration.json), a report on test (or validation), model_info.json,
the model card and the job's reports.

numpy only: a linear-only job imports no torch.
"""

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from model import calibration
from model.contract import SageMakerPaths, format_metrics
from model.data import Datasets, label_counts
from model.evaluation import classification_metrics, evaluation_report, model_card, write_reports
from model.hyperparameters import Hyperparameters


@dataclass(frozen=True)
class Scored:
    """Logits of one split and the true label indices."""

    logits: np.ndarray
    truth: np.ndarray


@dataclass(frozen=True)
class Assessment:
    split: str  # "test", or "validation" when the job has no test channel
    report: dict  # evaluation_report with its "calibration" section
    metrics: dict  # model_info.json's: {"validation": accuracy, macro-F1; split: scores}


def assess(hp: Hyperparameters, labels: list[str], validation: Scored, held_out: Scored,
           split: str, model_dir: Path) -> Assessment:  # fmt: skip
    """Calibrate on validation (writing calibration.json into model_dir), report on held_out."""
    temperature = calibration.fit_temperature(validation.logits, validation.truth)
    thresholds = calibration.review_thresholds(
        calibration.softmax(validation.logits, temperature),
        validation.truth,
        labels,
        hp.review_precision,
    )
    report = evaluation_report(held_out.truth, held_out.logits.argmax(axis=1), labels)
    report["calibration"] = {
        "temperature": temperature,
        "ece_bins": calibration.ECE_BINS,
        "ece": calibration.expected_calibration_error(
            calibration.softmax(held_out.logits), held_out.truth
        ),
        "calibrated_ece": calibration.expected_calibration_error(
            calibration.softmax(held_out.logits, temperature), held_out.truth
        ),
        "review_precision": hp.review_precision,
        "review_thresholds": thresholds,
    }
    calibration.write_calibration(
        model_dir,
        {"temperature": temperature, "review_precision": hp.review_precision,
         "review_thresholds": thresholds},
    )  # fmt: skip
    scores = {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "ece": report["calibration"]["ece"],
        "calibrated_ece": report["calibration"]["calibrated_ece"],
    }
    validation_scores = classification_metrics(validation.truth, validation.logits.argmax(axis=1))
    return Assessment(split, report, {"validation": validation_scores, split: scores})


def print_metrics(assessment: Assessment) -> None:
    """The metric lines of the model the job serves (model.contract.METRIC_DEFINITIONS)."""
    split, scores = assessment.split, assessment.metrics[assessment.split]
    if split == "test":
        print(format_metrics({"test_accuracy": scores["accuracy"],
                              "test_macro_f1": scores["macro_f1"]}), flush=True)  # fmt: skip
    ece = {f"{split}_{name}": scores[name] for name in ("ece", "calibrated_ece")}
    temperature = assessment.report["calibration"]["temperature"]
    print(format_metrics({"temperature": temperature, **ece}), flush=True)


def model_info(hp: Hyperparameters, data: Datasets, kind: str, base_model: str, version: str,
               metrics: dict) -> dict:  # fmt: skip
    return {
        "name": hp.model_name,
        "version": version,
        "kind": kind,  # the serving container's predictor: "transformer" or "linear"
        "base_model": base_model,
        "training_job": os.environ.get("TRAINING_JOB_NAME"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": data.labels,
        "train_label_counts": label_counts(data.train),  # the monitor's reference
        "max_length": hp.max_length,
        "long_text": hp.long_text,
        "metrics": metrics,
        "hyperparameters": hp.model_dump(),
    }


def write_info(model_dir: Path, info: dict) -> None:
    (model_dir / "model_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def publish(paths: SageMakerPaths, info: dict, report: dict, split: str) -> None:
    """The served model's reports, its model_info.json beside them (output.tar.gz is small,
    so the model registry reads it there) and its model card."""
    write_reports(report, split, paths.output_data_dir)
    write_info(paths.output_data_dir, info)
    card = model_card(info, report, split, info["train_label_counts"])
    (paths.model_dir / "README.md").write_text(card, encoding="utf-8")
