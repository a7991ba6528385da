"""Evaluation: metrics, the confusion matrix (JSON and PNG), the model card.

The metrics are counted from the confusion matrix with numpy rather than taken from
scikit-learn: importing sklearn.metrics (scipy with it) took 1.4 s of every training job's
start; tests/unit/test_evaluation.py checks the counts against scikit-learn's.
"""

import json
from pathlib import Path

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, size: int) -> np.ndarray:
    """counts[true, predicted] over labels 0..size-1."""
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def scores_by_label(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per label; 0 where a ratio has nothing to count."""
    hits = np.diag(counts).astype(float)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return precision, recall, f1


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return overall(confusion(y_true, y_pred, int(max(y_true.max(), y_pred.max())) + 1))


def overall(counts: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 of a confusion matrix."""
    occurring = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    return {
        "accuracy": float(np.trace(counts) / counts.sum()),
        # Over the labels that occur (true or predicted): a label missing from a small
        # validation set must not count as an F1 of 0.
        "macro_f1": float(scores_by_label(counts)[2][occurring].mean()),
    }


def evaluation_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Per-class precision/recall/F1, overall metrics and the confusion matrix."""
    counts = confusion(y_true, y_pred, len(labels))
    precision, recall, f1 = scores_by_label(counts)
    support = counts.sum(axis=1)
    return {
        **overall(counts),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": labels, "matrix": counts.tolist()},
    }


def write_reports(report: dict, split: str, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps({"split": split, **report}, indent=2))
    (output_dir / "confusion_matrix.json").write_text(json.dumps(report["confusion_matrix"]))
    plot_confusion_matrix(report["confusion_matrix"], split, output_dir / "confusion_matrix.png")


def plot_confusion_matrix(confusion: dict, split: str, path: Path) -> None:
    """Rows normalised to recall, so rare and frequent classes read alike."""
    import matplotlib  # here, not at the top: 0.7 s that a job pays only once it is done

    matplotlib.use("Agg")  # no display in containers and CI
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], np.array(confusion["matrix"], dtype=float)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.28 * len(labels), 28)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7 if len(labels) > 20 else 9)
    axes.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) > 20 else 9)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix ({split}, rows normalised)")
    if len(labels) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                color = "white" if rows[i, j] > 0.5 else "black"
                axes.text(j, i, int(count), ha="center", va="center", fontsize=8, color=color)
    figure.colorbar(image, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def model_card(info: dict, report: dict, split: str, train_label_counts: dict[str, int]) -> str:
    """A short Markdown model card: what it is, how good, on what it was trained."""
    worst = sorted(report["per_class"].items(), key=lambda item: item[1]["f1"])[:5]
    lines = [
        f"# {info['name']} ({info['version']})",
        "",
        f"{origin(info)} to classify customer e-mails into "
        f"{len(info['labels'])} categories. Trained {info['created_at']}.",
        "",
        f"## Metrics ({split})",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {report['accuracy']:.4f} |",
        f"| macro F1 | {report['macro_f1']:.4f} |",
        "",
        "Weakest classes by F1: "
        + ", ".join(f"{label} ({scores['f1']:.2f})" for label, scores in worst),
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} "
            f"| {s['support']} |"
            for label, s in report["per_class"].items()
        ),
        "",
        *calibration_lines(report.get("calibration")),
        f"## Training data ({sum(train_label_counts.values())} e-mails)",
        "",
        "| label | count |",
        "|---|---|",
        *(f"| {label} | {count} |" for label, count in train_label_counts.items()),
        "",
        "## Hyperparameters",
        "",
        "```json",
        json.dumps(info["hyperparameters"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def origin(info: dict) -> str:
    if info.get("kind") == "linear":
        return "A linear model (TF-IDF + logistic regression, model/linear.py)"
    return f"Fine-tuned from `{info['base_model']}`"


def calibration_lines(calibration: dict | None) -> list[str]:
    """The model card's calibration section (calibration.json beside the weights)."""
    if not calibration:
        return []
    return [
        "## Calibration",
        "",
        f"Temperature {calibration['temperature']:.3f}, fitted on validation. Expected "
        f"calibration error ({calibration['ece_bins']} bins): {calibration['ece']:.4f} before, "
        f"{calibration['calibrated_ece']:.4f} after.",
        "",
        f"Review thresholds (precision {calibration['review_precision']:g} on validation): "
        + ", ".join(f"{label} {t:.3f}" for label, t in calibration["review_thresholds"].items()),
        "",
    ]
