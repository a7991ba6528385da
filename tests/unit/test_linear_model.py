"""The linear model (model/linear.py): scikit-learn's predictions, computed with numpy from
an artifact that holds no pickle; its serving predictor (model/serving/linear.py)."""

import json
import tarfile

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from model import linear
from model.calibration import softmax
from model.serving.linear import LinearPredictor
from model.serving.predictor import load_predictor
from tests.support.jobs import LABELS, make_emails

EMAILS = make_emails(30, seed=1)
TEXTS = [f"{e['subject']}\n{e['body']}" for e in EMAILS]
TRUTH = [e["label"] for e in EMAILS]
QUERIES = ["the invoice amount is wrong wrong", "Vertrag kündigen bitte", "", "ÄÖÜ 42 ok"]


def fitted_folder(folder, labels=LABELS):
    kept = [(t, y) for t, y in zip(TEXTS, TRUTH, strict=True) if y in labels]
    model = linear.fit([t for t, _ in kept], [y for _, y in kept], labels)
    model.save(folder)
    info = {"name": "m", "version": linear.version(folder), "kind": "linear", "labels": labels}
    (folder / "model_info.json").write_text(json.dumps(info))
    return model


@pytest.mark.parametrize("labels", [LABELS, LABELS[:2]], ids=["three labels", "two labels"])
def test_probabilities_are_scikit_learns(tmp_path, labels):
    model = fitted_folder(tmp_path, labels)
    kept = [(t, y) for t, y in zip(TEXTS, TRUTH, strict=True) if y in labels]
    reference = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(class_weight="balanced", C=10.0, max_iter=2000),
    ).fit([t for t, _ in kept], [y for _, y in kept])
    assert list(reference.classes_) == labels
    assert softmax(model.logits(QUERIES)) == pytest.approx(
        reference.predict_proba(QUERIES), abs=1e-5
    )


def test_round_trips_through_json_and_safetensors_only(tmp_path):
    model = fitted_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "linear.json", "linear.safetensors", "model_info.json"
    ]  # fmt: skip
    for path in tmp_path.iterdir():
        assert b"\x80\x04\x95" not in path.read_bytes(), f"a pickle in {path.name}"
    loaded = linear.LinearModel.load(tmp_path)
    assert loaded.labels == LABELS and loaded.vocabulary == model.vocabulary
    assert np.array_equal(loaded.logits(QUERIES), model.logits(QUERIES))


def test_a_weights_file_of_another_vocabulary_is_refused(tmp_path):
    fitted_folder(tmp_path)
    document = json.loads((tmp_path / linear.JSON_FILE).read_text())
    document["terms"] = document["terms"][:-1]
    (tmp_path / linear.JSON_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="does not match"):
        linear.LinearModel.load(tmp_path)


def test_serving_picks_the_linear_predictor_also_from_model_tar_gz(tmp_path):
    fitted_folder(tmp_path / "model")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        for path in (tmp_path / "model").iterdir():
            archive.add(path, arcname=path.name)
    packed = tmp_path / "packed"
    packed.mkdir()
    (tmp_path / "model.tar.gz").rename(packed / "model.tar.gz")
    predictor = load_predictor(packed, max_batch_size=8)
    assert isinstance(predictor, LinearPredictor)
    predictions = predictor.predict(["Please cancel my contract", "invoice wrong"], top_k=3)
    assert [p.label for p in predictions] == ["cancellation", "billing"]
    assert len(predictions[0].top_k) == 3 and predictions[0].top_k[0]["label"] == "cancellation"
    assert sum(t["score"] for t in predictions[0].top_k) == pytest.approx(1, abs=1e-5)


def test_embeddings_are_unit_length_and_closer_for_shared_words(tmp_path):
    fitted_folder(tmp_path)
    predictor = LinearPredictor(tmp_path, max_batch_size=8)
    texts = ["invoice wrong amount", "the invoice shows a wrong amount", "cancel my contract"]
    vectors = np.stack([p.embedding for p in predictor.predict(texts, 1)])
    assert vectors.shape == (3, linear.EMBEDDING_SIZE)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert not predictor.predict(["xyzzy"], 1)[0].embedding.any(), "no known word: zeros"
