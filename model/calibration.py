"""Imbalance and calibration: class weights for the loss, temperature scaling, ECE and
per-category review thresholds (model/fit.py uses them; serving reads calibration.json; the
functions' package carries this module for the monitor's ECE, so numpy is all it imports).

numpy only, except fit_temperature, which takes the logits as numpy and needs no torch either:
a 1-D search over log-temperature on the validation NLL is exact enough for one scalar.
"""

import json
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 15


def class_weights(counts: list[int], mode: str, imbalance_ratio: float) -> np.ndarray | None:
    """Loss weights per label, n / (k * count) as scikit-learn's 'balanced'; None for none.

    `auto` weights only when the largest label has more than `imbalance_ratio` times the
    e-mails of the smallest: balanced data trains as before. A label with no training
    e-mails gets weight 0 rather than infinity.
    """
    counts_array = np.asarray(counts, dtype=float)
    present = counts_array[counts_array > 0]
    if mode == "none" or present.size == 0:
        return None
    if mode == "auto" and present.max() / present.min() <= imbalance_ratio:
        return None
    weights = np.divide(
        counts_array.sum(),
        len(present) * counts_array,
        out=np.zeros_like(counts_array),
        where=counts_array > 0,
    )
    return weights


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    exponentials = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1))
    return float(np.mean(log_norm - shifted[np.arange(len(truth)), truth]))


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T): a grid over log T, then a
    golden-section search around the best point (the NLL is smooth and unimodal in log T)."""
    truth = np.asarray(truth)
    grid = np.linspace(np.log(1e-3), np.log(100.0), 81)
    losses = [negative_log_likelihood(logits, truth, np.exp(t)) for t in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, truth, np.exp(a)) < negative_log_likelihood(
            logits, truth, np.exp(b)
        ):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the confidence/accuracy gap over `bins` equal-width bins, weighted by
    the share of e-mails in each (Guo et al. 2017)."""
    probabilities = np.asarray(probabilities)
    correct = probabilities.argmax(axis=1) == np.asarray(truth)
    return top_label_calibration_error(probabilities.max(axis=1), correct, bins)


def top_label_calibration_error(confidence, correct, bins: int = ECE_BINS) -> float:
    """The ECE of answers given as their scores and whether each was right (the monitor's
    reviewed results carry no more than that)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    # Bin i holds confidences in (i/bins, (i+1)/bins]; 0 joins the first bin.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def review_thresholds(
    probabilities: np.ndarray, truth: np.ndarray, labels: list[str], target_precision: float
) -> dict[str, float]:
    """Per category, the lowest score above which the model's answers in that category are
    at least `target_precision` right on validation: answers scoring below need review.

    1.0 (everything reviewed) where no threshold reaches the target or the category is
    never predicted on validation."""
    probabilities, truth = np.asarray(probabilities), np.asarray(truth)
    predicted, score = probabilities.argmax(axis=1), probabilities.max(axis=1)
    thresholds = {}
    for index, label in enumerate(labels):
        mine = predicted == index
        scores, right = score[mine], truth[mine] == index
        order = np.argsort(-scores, kind="stable")
        scores, right = scores[order], right[order]
        # Precision of the answers scoring >= each score, highest scores first.
        precision = np.cumsum(right) / np.arange(1, len(right) + 1)
        meets = np.flatnonzero(precision >= target_precision)
        thresholds[label] = float(scores[meets[-1]]) if meets.size else 1.0
    return thresholds


def write_calibration(model_dir: Path, calibration: dict) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2), encoding="utf-8")


def read_calibration(model_dir: Path) -> dict:
    """calibration.json; {} for a model trained before it existed."""
    path = model_dir / CALIBRATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def read_temperature(model_dir: Path) -> float:
    """The model's fitted temperature; 1.0 for a model trained before calibration.json."""
    temperature = float(read_calibration(model_dir).get("temperature", 1.0))
    return temperature if temperature > 0 else 1.0


def read_review_thresholds(model_dir: Path) -> dict[str, float]:
    """The review threshold per category; {} for a model trained before they existed (its
    users fall back to one threshold of their own)."""
    thresholds = read_calibration(model_dir).get("review_thresholds", {})
    return {str(label): float(value) for label, value in thresholds.items()}
