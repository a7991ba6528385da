"""The monitor's measures and rules, on hand-made results."""

import math
from datetime import UTC, datetime

import pytest

from services import measures
from services.records import ClassificationV1

RULES = measures.Rules(min_accuracy=0.8, min_reviewed=2, max_label_psi=0.25, max_ece_increase=0.1)


def result(label="complaint", score=0.9, review=None, language="de", length=120, flagged=False):
    reviews = []
    if review:
        reviews = [{"reviewer": "a", "reviewed_at": datetime.now(UTC),
                    "previous_label": label, "label": review}]  # fmt: skip
    return ClassificationV1.model_validate({
        "message_id": f"m{id(reviews)}", "label": review or label, "score": score,
        "top_k": [{"label": label, "score": score}], "needs_review": flagged,
        "model": {"name": "n", "version": "v"}, "classified_at": datetime.now(UTC),
        "input": {"subject": "s", "language": language, "length": length,
                  "source": {"bucket": "b", "key": "k", "sha256": "0"}},
        "reviews": reviews,
    })  # fmt: skip


def test_live_accuracy_compares_the_models_label_with_the_reviewers():
    window = [result(review="complaint"), result(review="other"), result(), result(flagged=True)]
    built = measures.report(window, [], {}, RULES)
    assert built.reviewed == 2 and built.live_accuracy == 0.5
    assert built.needs_review_rate == 0.25
    assert built.predicted_labels == {"complaint": 4}, "what the model said, not the correction"
    assert built.fired == ["live accuracy 0.500 < 0.8 on 2 reviewed e-mails"]


def test_too_few_reviews_fire_nothing():
    built = measures.report([result(review="other")], [], {}, RULES)
    assert built.live_accuracy == 0.0 and built.fired == []


def test_macro_f1_is_the_mean_over_labels():
    assert measures.macro_f1(["a", "a", "b"], ["a", "b", "b"]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert measures.macro_f1(["a"], ["a"]) == 1.0


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    assert measures.psi({"a": 50, "b": 50}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    moderate = measures.psi({"a": 50, "b": 50}, {"a": 60, "b": 40})
    large = measures.psi({"a": 50, "b": 50}, {"a": 95, "b": 5})
    assert 0 < moderate < 0.1 < 0.25 < large
    assert math.isfinite(measures.psi({"a": 1}, {"b": 1})), "a new category is finite"


def test_label_drift_against_training_fires_the_rule():
    window = [result(label="complaint")] * 9 + [result(label="other")]
    built = measures.report(window, [], {"complaint": 50, "other": 50}, RULES)
    assert built.label_psi > 0.25
    assert built.fired and "predicted-label PSI" in built.fired[0]


def test_input_drift_compares_the_window_with_what_came_before():
    before = [result(language="de", length=150)] * 10
    same = measures.report([result(language="de", length=180)] * 5, before, {}, RULES)
    assert same.language_psi == pytest.approx(0) and same.length_psi == pytest.approx(0)
    shifted = measures.report([result(language="en", length=3000)] * 5, before, {}, RULES)
    assert shifted.language_psi > 1 and shifted.length_psi > 1
    assert shifted.languages == {"en": 5}


def test_confidence_histogram_and_an_empty_window():
    built = measures.report(
        [result(score=0.05), result(score=0.95), result(score=1.0)], [], {}, RULES
    )
    assert built.confidence_histogram == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    empty = measures.report([], [result()], {"complaint": 1}, RULES)
    assert empty.results == 0 and empty.needs_review_rate is None and empty.fired == []


def test_calibration_error_on_reviewed_results_against_trainings():
    """Scores of 0.9 of which half were confirmed: ECE 0.4; confirmed all: 0.1."""
    half = [result(score=0.9, review="complaint"), result(score=0.9, review="other")] * 2
    drifted = measures.report([*half, result(score=0.9)], [], {}, RULES, training_ece=0.05)
    assert drifted.live_ece == pytest.approx(0.4), "the unreviewed result does not count"
    assert drifted.fired == [
        "live accuracy 0.500 < 0.8 on 4 reviewed e-mails",
        "calibration error 0.400 on 4 reviewed e-mails > training's 0.050 + 0.1",
    ]
    confirmed = measures.report([result(score=0.9, review="complaint")] * 4, [], {}, RULES, 0.05)
    assert confirmed.live_ece == pytest.approx(0.1) and confirmed.fired == []


def test_calibration_drift_needs_trainings_figure_and_enough_reviews():
    wrong = [result(score=0.95, review="other")] * 3
    assert measures.report(wrong, [], {}, RULES).training_ece is None
    assert not any("calibration" in rule for rule in measures.report(wrong, [], {}, RULES).fired)
    few = measures.report(wrong[:1], [], {}, RULES, training_ece=0.0)
    assert few.live_ece == pytest.approx(0.95) and few.fired == []
