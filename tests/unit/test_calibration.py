"""model/calibration.py: class weights, ECE, temperature scaling, review thresholds."""

import numpy as np
import pytest

from model.calibration import (
    class_weights,
    expected_calibration_error,
    fit_temperature,
    read_temperature,
    review_thresholds,
    softmax,
    write_calibration,
)


def test_balanced_weights_are_n_over_k_count_as_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    counts = [500, 300, 150, 40, 10]
    labels = np.repeat(np.arange(5), counts)
    expected = compute_class_weight("balanced", classes=np.arange(5), y=labels)
    np.testing.assert_allclose(class_weights(counts, "balanced", 3.0), expected)
    # Weighted, every label carries the same total weight.
    totals = class_weights(counts, "balanced", 3.0) * np.array(counts)
    np.testing.assert_allclose(totals, totals[0])


def test_auto_weights_only_imbalanced_labels():
    assert class_weights([100, 90, 40], "auto", 3.0) is None  # 2.5 : 1
    assert class_weights([100, 90, 30], "auto", 3.0) is not None  # 3.3 : 1
    assert class_weights([100, 1], "none", 3.0) is None


def test_a_label_without_training_emails_gets_no_weight():
    weights = class_weights([10, 0, 90], "balanced", 3.0)
    assert weights[1] == 0 and np.isfinite(weights).all()


def test_ece_of_perfectly_calibrated_and_overconfident_scores():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    correct = rng.uniform(size=confidence.size) < confidence  # right as often as it claims
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    truth = np.where(correct, 0, 1)
    assert expected_calibration_error(probabilities, truth) < 0.01
    # Always 99% sure, right 60% of the time: ECE 0.39.
    sure = np.tile([0.99, 0.01], (1000, 1))
    truth = np.array([0] * 600 + [1] * 400)
    assert expected_calibration_error(sure, truth) == pytest.approx(0.39)


def test_ece_uses_fifteen_bins_by_default():
    # Confidences 0.70 and 0.72 share the bin (0.667, 0.733]: their errors cancel there.
    probabilities = np.array([[0.70, 0.30], [0.72, 0.28]])
    truth = np.array([0, 1])
    gap = abs((0.70 + 0.72) / 2 - 0.5)
    assert expected_calibration_error(probabilities, truth) == pytest.approx(gap)
    assert expected_calibration_error(probabilities, truth, bins=50) == pytest.approx(
        (abs(0.70 - 1) + abs(0.72 - 0)) / 2
    )


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_temperature):
    """Labels drawn from softmax(z / T): the NLL fit finds T again."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (20_000, 6))
    probabilities = softmax(logits, true_temperature)
    truth = np.array([rng.choice(6, p=p) for p in probabilities])
    assert fit_temperature(logits, truth) == pytest.approx(true_temperature, rel=0.05)


def test_temperature_scaling_lowers_the_ece_of_overconfident_logits():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (5000, 4))
    truth = np.array([rng.choice(4, p=p) for p in softmax(logits)])
    overconfident = logits * 4
    temperature = fit_temperature(overconfident, truth)
    assert temperature == pytest.approx(4, rel=0.1)
    before = expected_calibration_error(softmax(overconfident), truth)
    after = expected_calibration_error(softmax(overconfident, temperature), truth)
    assert after < before / 3


def test_review_thresholds_meet_the_target_precision_on_validation():
    # Label a: scores 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (right), 0.5 (wrong).
    # Label b: every answer right; label c: never predicted.
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.8, 0.1, 0.1],
            [0.7, 0.2, 0.1],
            [0.6, 0.3, 0.1],
            [0.5, 0.4, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.8, 0.1],
        ]
    )
    truth = np.array([0, 0, 1, 0, 2, 1, 1])
    labels = ["a", "b", "c"]
    # Answers for a scoring >= 0.6 are 3 of 4 right (0.75); >= 0.8, 2 of 2.
    assert review_thresholds(probabilities, truth, labels, 0.75) == {"a": 0.6, "b": 0.7, "c": 1.0}
    assert review_thresholds(probabilities, truth, labels, 0.9)["a"] == 0.8
    assert review_thresholds(probabilities, truth, labels, 1.0)["a"] == 0.8


def test_calibration_file_round_trip(tmp_path):
    assert read_temperature(tmp_path) == 1.0, "a model without calibration.json"
    write_calibration(tmp_path, {"temperature": 1.7, "review_thresholds": {}})
    assert read_temperature(tmp_path) == 1.7
