import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.contract import METRIC_DEFINITIONS, format_metrics
from model.evaluation import classification_metrics, evaluation_report, write_reports


def test_every_printed_metric_is_found_by_its_definition():
    values = {d["Name"]: 0.123456789 * (i + 1) for i, d in enumerate(METRIC_DEFINITIONS)}
    values["train_loss"] = 1.5e-7
    line = format_metrics(values)
    for definition in METRIC_DEFINITIONS:
        found = re.findall(definition["Regex"], line)
        assert len(found) == 1, definition["Name"]
        assert float(found[0]) == float(f"{values[definition['Name']]:.6g}")


def test_definitions_do_not_match_each_other():
    line = format_metrics({"validation_accuracy": 0.5, "test_accuracy": 0.25})
    accuracy = next(d for d in METRIC_DEFINITIONS if d["Name"] == "test_accuracy")
    assert re.findall(accuracy["Regex"], line) == ["0.25"]


def test_report_counts_and_scores(tmp_path):
    labels = ["a", "b", "c"]
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    report = evaluation_report(truth, predicted, labels)
    assert report["accuracy"] == 4 / 6
    assert report["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["per_class"]["b"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    write_reports(report, "test", tmp_path)
    assert json.loads((tmp_path / "evaluation.json").read_text())["split"] == "test"
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000


def test_macro_f1_ignores_labels_that_do_not_occur():
    """A small validation set may lack some of the 77 labels: they must not count as 0."""
    truth = np.array([0, 0, 1, 1])
    assert classification_metrics(truth, truth)["macro_f1"] == 1.0
    wrong = classification_metrics(truth, np.array([0, 0, 1, 5]))
    assert wrong["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3), "a predicted stray counts"


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn, on one label
@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda size: st.lists(
            st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), min_size=1
        ).map(lambda pairs: (size, pairs))
    )
)
def test_the_counts_agree_with_scikit_learn(case):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    from sklearn.metrics import precision_recall_fscore_support as scores

    size, pairs = case
    truth, predicted = (np.array(values) for values in zip(*pairs, strict=True))
    labels = [f"label-{i}" for i in range(size)]
    report = evaluation_report(truth, predicted, labels)
    indices = list(range(size))
    assert (
        report["confusion_matrix"]["matrix"]
        == confusion_matrix(truth, predicted, labels=indices).tolist()
    )
    assert report["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    macro = f1_score(truth, predicted, average="macro", zero_division=0)
    assert report["macro_f1"] == pytest.approx(macro)
    precision, recall, f1, support = scores(truth, predicted, labels=indices, zero_division=0)
    for i, label in enumerate(labels):
        ours = report["per_class"][label]
        assert ours["precision"] == pytest.approx(precision[i])
        assert ours["recall"] == pytest.approx(recall[i])
        assert ours["f1"] == pytest.approx(f1[i])
        assert ours["support"] == support[i]


def test_model_card_shows_recall_per_category_and_the_calibration():
    from model.evaluation import model_card

    labels = ["a", "b"]
    report = evaluation_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), labels)
    report["calibration"] = {
        "temperature": 1.5,
        "ece_bins": 15,
        "ece": 0.2,
        "calibrated_ece": 0.05,
        "review_precision": 0.9,
        "review_thresholds": {"a": 0.8, "b": 1.0},
    }
    info = {"name": "m", "version": "v", "base_model": "x", "labels": labels,
            "created_at": "today", "hyperparameters": {}}  # fmt: skip
    card = model_card(info, report, "test", {"a": 2, "b": 2})
    assert "| a | 1.000 | 0.500 | 0.667 | 2 |" in card
    assert "0.2000 before, 0.0500 after" in card and "a 0.800, b 1.000" in card
