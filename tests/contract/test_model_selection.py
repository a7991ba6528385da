"""The better model wins (model/selection.py): training fits the transformer and the linear
model on the same split, serves the one with the better validation macro-F1 and keeps the
other in model/runner_up/; model_selection forces either. The served linear model answers
under the inference contract like the transformer."""

import json

import httpx
import numpy as np
import pytest

from model.linear import EMBEDDING_SIZE
from tests.support.jobs import LABELS, lay_out_job, make_emails, run_train, serving
from tests.support.tiny_model import tiny_hyperparameters

pytestmark = pytest.mark.live  # every test here runs a training job
CHANNELS = {"train": make_emails(45, 1), "validation": make_emails(9, 2), "test": make_emails(9, 3)}


def train(tmp_path, hyperparameters: dict):
    base = lay_out_job(tmp_path / "ml", hyperparameters, CHANNELS)
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    info = json.loads((base / "model" / "model_info.json").read_text())
    return base, info, result.stdout + result.stderr


def test_linear_model_wins_when_the_transformer_learned_little(tiny_bert, tmp_path):
    """One epoch at a tiny learning rate: the tiny BERT barely moves; the linear one wins."""
    hyperparameters = tiny_hyperparameters(
        tiny_bert, epochs=1, learning_rate=1e-6, model_selection="best"
    )
    base, info, log = train(tmp_path, hyperparameters)
    model = base / "model"
    assert info["kind"] == "linear" and (model / "linear.safetensors").is_file()
    assert not (model / "model.safetensors").exists()
    selection = info["selection"]
    assert selection["served"] == "linear"
    scores = {kind: m["validation"]["macro_f1"] for kind, m in selection["candidates"].items()}
    assert scores["linear"] > scores["transformer"]
    assert "model selection: serving the linear model" in log
    runner_up = json.loads((model / "runner_up" / "model_info.json").read_text())
    assert runner_up["kind"] == "transformer" and (model / "runner_up" / "config.json").is_file()
    reports = base / "output" / "data"
    assert json.loads((reports / "evaluation.json").read_text())["selection"] == selection
    assert json.loads((reports / "model_info.json").read_text())["version"] == info["version"]
    for kind in ("linear", "transformer"):
        assert (reports / f"evaluation-{kind}.json").is_file()
    assert "linear model" in (model / "README.md").read_text()


@pytest.mark.parametrize("forced", ["transformer", "linear"])
def test_model_selection_forces_either(tiny_bert, tmp_path, forced):
    base, info, _ = train(tmp_path, tiny_hyperparameters(tiny_bert, model_selection=forced))
    assert info["kind"] == forced and "selection" not in info
    assert not (base / "model" / "runner_up").exists()
    assert 0 <= info["metrics"]["test"]["accuracy"] <= 1


@pytest.fixture(scope="module")
def linear_job(tmp_path_factory):
    base = lay_out_job(
        tmp_path_factory.mktemp("linear") / "ml",
        {"model_selection": "linear", "model_name_or_path": "unused"},
        CHANNELS,
    )
    result = run_train(base)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_accuracy=" in result.stdout, "the served model's metric lines"
    return base


def test_serves_the_linear_model_under_the_contract(linear_job):
    info = json.loads((linear_job / "model" / "model_info.json").read_text())
    texts = ["Kündigung\nHiermit kündige ich meinen Vertrag.", "Invoice wrong\nWrong amount."]
    with serving(linear_job) as url:
        assert httpx.get(f"{url}/ping").json()["model"] == {
            "name": info["name"], "version": info["version"]
        }  # fmt: skip
        body = {"instances": texts, "top_k": 3, "embed": True}
        answer = httpx.post(f"{url}/invocations", json=body, timeout=30).json()
    predictions = answer["predictions"]
    assert [p["label"] for p in predictions] == ["cancellation", "billing"]
    for p in predictions:
        assert p["top_k"][0]["label"] == p["label"] and len(p["top_k"]) == 3
        assert {t["label"] for t in p["top_k"]} == set(LABELS)
        assert sum(t["score"] for t in p["top_k"]) == pytest.approx(1, abs=1e-4)
        assert np.linalg.norm(p["embedding"]) == pytest.approx(1, abs=1e-4)
        assert len(p["embedding"]) == EMBEDDING_SIZE
    assert answer["model"]["version"] == info["version"]


def test_the_registry_reads_a_linear_models_held_out_figures(linear_job):
    """Champion/challenger (services/lifecycle.decide) compares model_info's test figures,
    which a linear model's job writes as a transformer's does."""
    from services.registry import ModelVersion

    info = json.loads((linear_job / "output" / "data" / "model_info.json").read_text())
    entry = ModelVersion(
        job="j", registered_at="now", model_data_url="s3://b/m.tar.gz", model_info=info
    )
    assert entry.held_out_accuracy == info["metrics"]["test"]["accuracy"]
    assert entry.model_info.model_dump()["kind"] == "linear"
