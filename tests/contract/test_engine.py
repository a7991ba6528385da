"""The OpenVINO engine serves what the torch model would: same labels, close scores."""

import json
import shutil
import sys

import numpy as np
import pytest

from model.serving.engine import INFO_KEY, IR_DIR, sha256
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


@pytest.fixture(scope="module")
def converted(trained_job, tmp_path_factory):
    """A copy of the trained model and the OpenVINO predictor that converted it."""
    folder = tmp_path_factory.mktemp("engine") / "model"
    shutil.copytree(trained_job / "model", folder)
    return folder, Predictor(folder, 4, engine="openvino")


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
