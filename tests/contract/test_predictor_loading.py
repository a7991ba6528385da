"""The serving side loads safetensors only and unpacks archives safely."""

import io
import shutil
import tarfile

import pytest

from model.serving.predictor import ModelLoadError, Predictor, unpack_archive


def test_refuses_a_model_without_safetensors(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"no model\.safetensors"):
        Predictor(model_dir, max_batch_size=8)


def test_unpacks_model_tar_gz(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        for path in (trained_job / "model").iterdir():
            tar.add(path, arcname=path.name)
    predictor = Predictor(model_dir, max_batch_size=8)
    assert predictor.predict(["Kündigung"], top_k=1)[0].label in predictor.labels


def test_archive_members_cannot_escape_the_model_folder(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    with pytest.raises(ModelLoadError, match="outside the destination"):
        unpack_archive(model_dir)
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in model_dir.iterdir()] == ["model.tar.gz"], "nothing left to serve"


def test_refuses_a_model_without_its_info(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    (model_dir / "model_info.json").write_text('{"name": "x"}')
    with pytest.raises(ModelLoadError, match=r"lacks \['version'\]"):
        Predictor(model_dir, max_batch_size=8)
    (model_dir / "model_info.json").unlink()
    with pytest.raises(ModelLoadError, match=r"cannot read model_info\.json"):
        Predictor(model_dir, max_batch_size=8)


def test_scores_are_softmax_of_the_logits_over_the_fitted_temperature(trained_job, tmp_path):
    """calibration.json's temperature is applied at serving; without the file, T = 1."""
    import json

    import numpy as np

    from model.calibration import softmax

    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    text = "Please cancel my contract at the end of the month."
    (model_dir / "calibration.json").unlink()
    plain = Predictor(model_dir, max_batch_size=8)
    inputs = plain.tokenizer([text], return_tensors="np")
    logits, _ = plain.engine.forward({k: v.astype(np.int64) for k, v in inputs.items()})
    assert plain.predict([text], top_k=1)[0].score == pytest.approx(
        softmax(logits)[0].max(), abs=1e-5
    )

    (model_dir / "calibration.json").write_text(json.dumps({"temperature": 4.0}))
    calibrated = Predictor(model_dir, max_batch_size=8)
    expected = softmax(logits, 4.0)[0].max()
    assert calibrated.predict([text], top_k=1)[0].score == pytest.approx(expected, abs=1e-5)
    (model_dir / "calibration.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"calibration\.json"):
        Predictor(model_dir, max_batch_size=8)


def test_each_prediction_carries_its_labels_review_threshold(trained_job, tmp_path):
    """calibration.json's threshold for the predicted label; none for a model without it."""
    import json

    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    texts = ["Please cancel my contract.", "My invoice amount is wrong.", "Where is my parcel?"]
    labels = {p.label for p in Predictor(model_dir, max_batch_size=8).predict(texts, top_k=1)}
    thresholds = {label: 0.1 * (i + 1) for i, label in enumerate(sorted(labels))}
    (model_dir / "calibration.json").write_text(json.dumps({"review_thresholds": thresholds}))
    predicted = Predictor(model_dir, max_batch_size=8).predict(texts, top_k=1)
    assert [p.review_threshold for p in predicted] == [thresholds[p.label] for p in predicted]

    (model_dir / "calibration.json").unlink()
    plain = Predictor(model_dir, max_batch_size=8).predict(texts, top_k=1)
    assert [p.review_threshold for p in plain] == [None] * 3
