"""Evaluation: metrics, the confusion matrix (JSON and PNG), the model card."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in containers and CI
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # Over the labels that occur (true or predicted): a label missing from a small
        # validation set must not count as an F1 of 0.
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def evaluation_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Per-class precision/recall/F1, overall metrics and the confusion matrix."""
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    return {
        **classification_metrics(y_true, y_pred),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=indices).tolist(),
        },
    }


def write_reports(report: dict, split: str, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps({"split": split, **report}, indent=2))
    (output_dir / "confusion_matrix.json").write_text(json.dumps(report["confusion_matrix"]))
    plot_confusion_matrix(report["confusion_matrix"], split, output_dir / "confusion_matrix.png")


def plot_confusion_matrix(confusion: dict, split: str, path: Path) -> None:
    """Rows normalised to recall, so rare and frequent classes read alike."""
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
        f"Fine-tuned from `{info['base_model']}` to classify customer e-mails into "
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
