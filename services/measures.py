"""What the monitor computes over a window of results: live quality on reviewed e-mails,
how often the model is unsure, and how far inputs and predictions drifted.

Pure functions over classification.v1 results, so they are tested without AWS. The
metrics are a handful of lines each; scikit-learn would add 40 MB to every function's
package for two of them. The calibration error is training's own function
(model/calibration.py, packaged with the functions), so the two figures compare.
"""

import math
from collections import Counter
from dataclasses import asdict, dataclass

from model.calibration import top_label_calibration_error
from services.records import ClassificationV1

LENGTH_BUCKETS = (0, 200, 500, 1000, 2000, 5000)  # characters: short note ... long letter
CONFIDENCE_BINS = 10


@dataclass(frozen=True)
class Rules:
    """When the monitor starts retraining (the defaults are in services/settings.py)."""

    min_accuracy: float  # live accuracy on reviewed e-mails below this
    min_reviewed: int  # ... counted only with at least this many reviews
    max_label_psi: float  # predicted labels against the training distribution
    max_ece_increase: float  # calibration error on reviewed e-mails above training's by this


@dataclass(frozen=True)
class Report:
    results: int
    reviewed: int
    needs_review_rate: float | None
    live_accuracy: float | None  # the model's label against the reviewer's
    live_macro_f1: float | None
    live_ece: float | None  # calibration error of the served scores on reviewed e-mails
    training_ece: float | None  # the same on training's held-out split (model_info.json)
    confidence_histogram: list[int]  # CONFIDENCE_BINS bins over [0, 1]
    predicted_labels: dict[str, int]
    label_psi: float | None  # against the champion's training label counts
    length_psi: float | None  # this window against the results before it
    language_psi: float | None
    languages: dict[str, int]
    fired: list[str]  # the rules that fired, in words

    def as_dict(self) -> dict:
        return asdict(self)


def report(
    window: list[ClassificationV1],
    baseline: list[ClassificationV1],
    training_labels: dict[str, int],
    rules: Rules,
    training_ece: float | None = None,
) -> Report:
    reviewed = [r for r in window if r.reviews]
    truth = [r.reviews[-1].label for r in reviewed]
    predicted = [r.reviews[0].previous_label for r in reviewed]
    accuracy = (
        sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(reviewed)
        if reviewed
        else None
    )
    predicted_counts = Counter(original_label(r) for r in window)
    label_drift = psi(training_labels, predicted_counts) if window and training_labels else None
    built = Report(
        results=len(window),
        reviewed=len(reviewed),
        needs_review_rate=sum(r.needs_review for r in window) / len(window) if window else None,
        live_accuracy=accuracy,
        live_macro_f1=macro_f1(truth, predicted) if reviewed else None,
        live_ece=calibration_error(reviewed) if reviewed else None,
        training_ece=training_ece,
        confidence_histogram=histogram([r.score for r in window]),
        predicted_labels=dict(predicted_counts),
        label_psi=label_drift,
        length_psi=psi(lengths(baseline), lengths(window)) if baseline and window else None,
        language_psi=psi(languages(baseline), languages(window)) if baseline and window else None,
        languages=dict(languages(window)),
        fired=[],
    )
    return Report(**(asdict(built) | {"fired": fired_rules(built, rules)}))


def fired_rules(built: Report, rules: Rules) -> list[str]:
    fired = []
    accuracy = built.live_accuracy
    enough = accuracy is not None and built.reviewed >= rules.min_reviewed
    if enough and accuracy < rules.min_accuracy:
        fired.append(
            f"live accuracy {accuracy:.3f} < {rules.min_accuracy} "
            f"on {built.reviewed} reviewed e-mails"
        )
    if built.label_psi is not None and built.label_psi > rules.max_label_psi:
        fired.append(f"predicted-label PSI {built.label_psi:.3f} > {rules.max_label_psi}")
    if enough and built.training_ece is not None:
        increase = built.live_ece - built.training_ece
        if increase > rules.max_ece_increase:
            fired.append(
                f"calibration error {built.live_ece:.3f} on {built.reviewed} reviewed e-mails "
                f"> training's {built.training_ece:.3f} + {rules.max_ece_increase}"
            )
    return fired


def calibration_error(reviewed: list[ClassificationV1]) -> float:
    """The expected calibration error of the served scores, the reviewers' labels taken as
    the truth (a confirmed label counts as right)."""
    right = [r.reviews[-1].label == r.reviews[0].previous_label for r in reviewed]
    return top_label_calibration_error([r.score for r in reviewed], right)


def original_label(result: ClassificationV1) -> str:
    """What the model said, before any reviewer changed it."""
    return result.reviews[0].previous_label if result.reviews else result.label


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    """The unweighted mean of per-label F1 over the labels that occur in either list."""
    scores = []
    for label in sorted(set(truth) | set(predicted)):
        hits = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        claimed, actual = predicted.count(label), truth.count(label)
        scores.append(2 * hits / (claimed + actual) if claimed + actual else 0.0)
    return sum(scores) / len(scores)


def psi(expected: dict[str, int], actual: dict[str, int], floor: float = 1e-4) -> float:
    """Population stability index of two count distributions over the same categories:
    < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift."""
    categories = set(expected) | set(actual)
    total_expected, total_actual = sum(expected.values()), sum(actual.values())
    value = 0.0
    for category in categories:
        e = max(expected.get(category, 0) / total_expected, floor)
        a = max(actual.get(category, 0) / total_actual, floor)
        value += (a - e) * math.log(a / e)
    return value


def histogram(scores: list[float]) -> list[int]:
    bins = [0] * CONFIDENCE_BINS
    for score in scores:
        bins[min(int(score * CONFIDENCE_BINS), CONFIDENCE_BINS - 1)] += 1
    return bins


def lengths(results: list[ClassificationV1]) -> dict[str, int]:
    """Results counted by length bucket ("0-199", ..., "5000+")."""
    counts: Counter[str] = Counter()
    for result in results:
        if result.input is None:
            continue
        size = result.input.length
        lower = max(bound for bound in LENGTH_BUCKETS if bound <= size)
        upper = next((bound for bound in LENGTH_BUCKETS if bound > size), None)
        counts[f"{lower}-{upper - 1}" if upper else f"{lower}+"] += 1
    return dict(counts)


def languages(results: list[ClassificationV1]) -> dict[str, int]:
    return dict(Counter(r.input.language for r in results if r.input is not None))
