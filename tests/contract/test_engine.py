"""The OpenVINO engine serves what the torch model would: same labels, close scores; the
int8 model training checked serves in its place, and fp32 where it is absent or altered."""

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from model.quantization import MIN_LABEL_AGREEMENT, write_int8
from model.serving.engine import INFO_KEY, INT8_FILES, INT8_KEY, IR_DIR, sha256
from model.serving.predictor import Predictor

TEXTS = [
    "Ich möchte meinen Vertrag kündigen",
    "Die Rechnung ist falsch, bitte prüfen",
    "Wo bleibt meine Lieferung?",
    "cancel my subscription please",
    "invoice amount wrong",
    "parcel not delivered yet",
    "Kündigung",
    "",
]
# bf16 (OpenVINO's choice on CPUs with AMX) keeps about 3 significant digits.
SCORE_TOLERANCE = 0.02
MIN_EMBEDDING_COSINE = 0.995
INT8_SCORE_TOLERANCE = 0.05  # of each calibrated top score against fp32's, on TEXTS


@pytest.fixture(scope="module")
def converted(trained_job, tmp_path_factory):
    """A copy of the trained model and the fp32 OpenVINO predictor of it."""
    folder = tmp_path_factory.mktemp("engine") / "model"
    shutil.copytree(trained_job / "model", folder)
    return folder, Predictor(folder, 4, engine="openvino", precision="fp32")


def test_openvino_labels_equal_torch_and_scores_are_close(converted):
    model_dir, openvino = converted
    torch_predictions = Predictor(model_dir, 4, engine="torch").predict(TEXTS, top_k=3)
    openvino_predictions = openvino.predict(TEXTS, top_k=3)
    for ours, reference in zip(openvino_predictions, torch_predictions, strict=True):
        assert ours.label == reference.label
        assert ours.score == pytest.approx(reference.score, abs=SCORE_TOLERANCE)
        assert [entry["label"] for entry in ours.top_k][:1] == [reference.label]
        assert float(ours.embedding @ reference.embedding) >= MIN_EMBEDDING_COSINE


def test_the_converted_model_is_cached_with_its_hashes(converted):
    model_dir, _ = converted
    recorded = json.loads((model_dir / "model_info.json").read_text())[INFO_KEY]["files"]
    assert recorded == {name: sha256(model_dir / IR_DIR / name) for name in recorded}
    assert set(recorded) == {"model.xml", "model.bin"}


def test_an_ir_cached_without_the_embedding_output_is_converted_again(converted, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(converted[0], model_dir)
    info = json.loads((model_dir / "model_info.json").read_text())
    del info[INFO_KEY]["outputs"]  # as the engine before embeddings recorded it
    (model_dir / "model_info.json").write_text(json.dumps(info))
    predictor = Predictor(model_dir, 4, engine="openvino")
    assert json.loads((model_dir / "model_info.json").read_text())[INFO_KEY]["outputs"]
    [prediction] = predictor.predict(["Kündigung"], top_k=1)
    assert float(np.linalg.norm(prediction.embedding)) == pytest.approx(1, abs=1e-4)


def test_a_changed_cached_file_is_converted_again(converted, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(converted[0], model_dir)
    weights = model_dir / IR_DIR / "model.bin"
    original = sha256(weights)
    weights.write_bytes(b"not the converted weights")
    predictor = Predictor(model_dir, 4, engine="openvino")
    assert sha256(weights) == original
    assert predictor.predict(["Kündigung"], top_k=1)[0].label in predictor.labels


def test_openvino_telemetry_stays_off(converted):
    assert sys.modules["openvino_telemetry"] is None, "OpenVINO's no-op stub, not the sender"


# --- int8 (model/quantization.py, decision 0013) ------------------------------------------


def copy_model(trained_job, tmp_path) -> Path:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    return model_dir


def int8_entry(model_dir: Path) -> dict:
    return json.loads((model_dir / "model_info.json").read_text())[INT8_KEY]


def test_training_writes_the_checked_int8_model_with_its_hashes(trained_job):
    model_dir = trained_job / "model"
    entry = int8_entry(model_dir)
    assert entry["passed"], entry["reason"]
    assert entry["files"] == {name: sha256(model_dir / IR_DIR / name) for name in INT8_FILES}
    assert entry["check"]["texts"] > 0
    assert entry["check"]["label_agreement"] >= MIN_LABEL_AGREEMENT


def test_serving_takes_the_int8_model_and_says_so(trained_job, tmp_path, caplog):
    model_dir = copy_model(trained_job, tmp_path)
    with caplog.at_level(logging.INFO, logger="postwerk.serving"):
        int8 = Predictor(model_dir, 4, engine="openvino")
    assert "int8 IR" in int8.engine.name
    assert "int8, checked at training" in caplog.text
    fp32 = Predictor(model_dir, 4, engine="openvino", precision="fp32")
    assert "fp32 IR, f32" in fp32.engine.name
    for ours, reference in zip(
        int8.predict(TEXTS, top_k=3), fp32.predict(TEXTS, top_k=3), strict=True
    ):
        assert ours.label == reference.label
        assert ours.score == pytest.approx(reference.score, abs=INT8_SCORE_TOLERANCE)


def test_an_int8_model_that_failed_its_check_is_not_served(trained_job, tmp_path, caplog):
    model_dir = copy_model(trained_job, tmp_path)
    info = json.loads((model_dir / "model_info.json").read_text())
    info[INT8_KEY] |= {"passed": False, "reason": "accuracy 0.90 points below fp32's"}
    (model_dir / "model_info.json").write_text(json.dumps(info))
    with caplog.at_level(logging.INFO, logger="postwerk.serving"):
        predictor = Predictor(model_dir, 4, engine="openvino")
    assert "fp32 IR" in predictor.engine.name
    assert "fp32, not int8: the int8 IR failed its check at training (accuracy 0.90" in caplog.text


def test_an_altered_int8_file_is_not_served(trained_job, tmp_path, caplog):
    model_dir = copy_model(trained_job, tmp_path)
    (model_dir / IR_DIR / INT8_FILES[1]).write_bytes(b"not the checked weights")
    with caplog.at_level(logging.INFO, logger="postwerk.serving"):
        predictor = Predictor(model_dir, 4, engine="openvino")
    assert "fp32 IR" in predictor.engine.name
    assert f"{IR_DIR}/{INT8_FILES[1]} is missing or differs from its SHA-256" in caplog.text


def test_quantization_over_budget_writes_no_int8_files(trained_job, tmp_path):
    model_dir = copy_model(trained_job, tmp_path)
    predictor = Predictor(model_dir, 4, engine="openvino", precision="fp32")
    inputs = [
        {k: v.astype(np.int64) for k, v in predictor.tokenizer([t], return_tensors="np").items()}
        for t in TEXTS
    ]
    truth = np.zeros(len(TEXTS), dtype=np.int64)
    entry = write_int8(model_dir, inputs, inputs, truth, 1.0, max_accuracy_drop=-1.0)
    assert not entry["passed"]
    assert "below fp32's (budget -100.00)" in entry["reason"]
    assert int8_entry(model_dir) == entry
    assert not any((model_dir / IR_DIR / name).exists() for name in INT8_FILES)
