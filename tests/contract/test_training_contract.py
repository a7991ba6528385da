"""`python -m model train` against the SageMaker training contract (docs/architecture.md 3.3)."""

import json
import re

import pytest
from safetensors.torch import load_file

from model.contract import METRIC_DEFINITIONS
from tests.support.jobs import LABELS, lay_out_job, make_emails, run_train
from tests.support.tiny_model import tiny_hyperparameters


def metric_values(log: str) -> dict[str, list[float]]:
    """What SageMaker would extract from the log with our MetricDefinitions."""
    return {d["Name"]: [float(v) for v in re.findall(d["Regex"], log)] for d in METRIC_DEFINITIONS}


def test_writes_every_artifact(trained_job):
    model_dir = trained_job / "model"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "model_info.json"):
        assert (model_dir / name).is_file(), name
    assert not list(model_dir.glob("*.bin")) and not list(model_dir.glob("*.pt")), "pickles"
    config = json.loads((model_dir / "config.json").read_text())
    assert sorted(config["id2label"].values()) == LABELS
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["labels"] == LABELS and len(info["version"]) == 12
    assert 0 <= info["metrics"]["test"]["accuracy"] <= 1
    assert load_file(model_dir / "model.safetensors"), "weights load as safetensors"
    card = (model_dir / "README.md").read_text()
    assert "accuracy" in card and "| billing |" in card

    reports = trained_job / "output" / "data"
    evaluation = json.loads((reports / "evaluation.json").read_text())
    assert evaluation["split"] == "test"
    assert set(evaluation["per_class"]) == set(LABELS)
    matrix = json.loads((reports / "confusion_matrix.json").read_text())["matrix"]
    assert sum(map(sum, matrix)) == 15, "every test e-mail is in the confusion matrix"
    assert (reports / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (trained_job / "checkpoints" / "LATEST").is_file()
    calibration = json.loads((model_dir / "calibration.json").read_text())
    assert calibration["temperature"] > 0
    assert set(calibration["review_thresholds"]) == set(LABELS)
    assert evaluation["calibration"]["temperature"] == calibration["temperature"]
    assert 0 <= evaluation["calibration"]["calibrated_ece"] <= 1
    assert all("recall" in scores for scores in evaluation["per_class"].values())
    assert not (trained_job / "output" / "failure").exists()


def test_learns_the_tiny_task(trained_job):
    info = json.loads((trained_job / "model" / "model_info.json").read_text())
    assert info["metrics"]["test"]["accuracy"] >= 0.9


def test_metric_lines_match_the_metric_definitions(tiny_bert, tmp_path):
    base = lay_out_job(
        tmp_path / "ml",
        tiny_hyperparameters(tiny_bert, epochs=2),
        {"train": make_emails(30, 1), "validation": make_emails(9, 2), "test": make_emails(9, 3)},
    )
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    metrics = metric_values(result.stdout)
    assert metrics["epoch"] == [1.0, 2.0]
    assert len(metrics["validation_accuracy"]) == 2 and len(metrics["train_loss"]) == 2
    assert len(metrics["test_accuracy"]) == 1 and len(metrics["test_macro_f1"]) == 1
    assert all(0 <= v <= 1 for v in metrics["validation_macro_f1"])
    assert len(metrics["temperature"]) == 1 and len(metrics["test_calibrated_ece"]) == 1
    assert "batches" in result.stdout, "plain progress lines when not on a terminal"


def test_half_precision_base_model_trains_in_fp32(tiny_bert, tmp_path):
    """Many hub checkpoints are stored in fp16/bf16; the trainer keeps fp32 master weights."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    half = tmp_path / "half-bert"
    AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, dtype=torch.float16
    ).save_pretrained(half)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(half)
    emails = {"train": make_emails(30, 1), "validation": make_emails(9, 2)}
    base = lay_out_job(tmp_path / "ml", tiny_hyperparameters(half, epochs=1), emails)
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    weights = load_file(base / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()} == {
        torch.float32
    }


def test_resumes_from_checkpoint(tiny_bert, tmp_path):
    emails = {"train": make_emails(30, 1), "validation": make_emails(9, 2)}
    base = lay_out_job(tmp_path / "ml", tiny_hyperparameters(tiny_bert, epochs=1), emails)
    assert run_train(base).returncode == 0
    lay_out_job(base, tiny_hyperparameters(tiny_bert, epochs=3), emails)
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    assert "resumed from checkpoint: 1 epochs" in result.stdout
    assert metric_values(result.stdout)["epoch"] == [2.0, 3.0], "epoch 1 is not trained again"


def test_csv_channel_by_content_type(tiny_bert, tmp_path):
    base = lay_out_job(tmp_path / "ml", tiny_hyperparameters(tiny_bert, epochs=1), {"train": []})
    rows = ["text,label"] + [
        f'"{e["subject"]} {e["body"]}",{e["label"]}' for e in make_emails(30, 1)
    ]
    channel = base / "input" / "data" / "train"
    (channel / "train.jsonl").unlink()
    (channel / "emails.data").write_text("\n".join(rows) + "\n")
    config = base / "input" / "config" / "inputdataconfig.json"
    config.write_text(json.dumps({"train": {"ContentType": "text/csv"}}))
    result = run_train(base)
    assert result.returncode == 0, result.stderr
    assert "data: 27 train, 3 validation" in result.stdout, "validation split held out"


def bad_inputs():
    emails = make_emails(30, 1)
    return {
        "missing channel": ({}, {}, "channel 'train' is missing"),
        "empty channel": ({"train": []}, {}, "channel 'train' has no records"),
        "no label": (
            {"train": [{"text": e["body"]} for e in emails]},
            {},
            "no 'label' value",
        ),
        "no text": (
            {"train": [{"label": e["label"]} for e in emails]},
            {},
            "no 'text' (or 'subject'/'body') field",
        ),
        "one class": (
            {"train": [e | {"label": "billing"} for e in emails]},
            {},
            "single label ('billing')",
        ),
        "unknown model": (
            {"train": emails},
            {"model_name_or_path": "/nonexistent/model"},
            "cannot load model '/nonexistent/model'",
        ),
        "unknown hyperparameter": (
            {"train": emails},
            {"lr": 0.1},
            "unknown hyperparameter 'lr'",
        ),
        "bad hyperparameter value": (
            {"train": emails},
            {"epochs": "many"},
            "hyperparameter 'epochs'",
        ),
    }


@pytest.mark.parametrize("case", bad_inputs().keys())
def test_bad_input_fails_with_one_line_reason(case, tiny_bert, tmp_path):
    channels, overrides, expected = bad_inputs()[case]
    base = tmp_path / "ml"
    lay_out_job(base, tiny_hyperparameters(tiny_bert, **overrides), channels)
    result = run_train(base)
    assert result.returncode == 1
    reason = (base / "output" / "failure").read_text()
    assert expected in reason
    assert reason.count("\n") == 1, "one line"
    assert "Traceback" not in result.stdout + result.stderr
    assert not (base / "model" / "model.safetensors").exists()


def test_unreadable_file_fails_with_reason(tiny_bert, tmp_path):
    base = lay_out_job(tmp_path / "ml", tiny_hyperparameters(tiny_bert), {"train": []})
    (base / "input" / "data" / "train" / "train.jsonl").write_bytes(b"\xff\xfe\x00garbage\x80")
    result = run_train(base)
    assert result.returncode == 1
    assert "cannot read train.jsonl" in (base / "output" / "failure").read_text()


def test_refuses_the_checkpoint_of_another_job(tiny_bert, tmp_path):
    emails = {"train": make_emails(30, 1), "validation": make_emails(9, 2)}
    base = lay_out_job(tmp_path / "ml", tiny_hyperparameters(tiny_bert, epochs=1), emails)
    assert run_train(base).returncode == 0
    changed = tiny_hyperparameters(tiny_bert, epochs=2, learning_rate=0.01)
    lay_out_job(base, changed, emails | {"train": make_emails(30, 5)})
    result = run_train(base)
    assert result.returncode == 1
    reason = (base / "output" / "failure").read_text()
    assert "checkpoint of another job (different learning_rate, data)" in reason
