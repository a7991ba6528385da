"""The serving container's predictor for a linear model folder (model_info.json "kind":
"linear", model/linear.py): the same answers as the transformer's Predictor, numpy only.

Scores: the softmax of the logits over the temperature fitted on validation, as for the
transformer. Embeddings: the linear model has no encoder, so its embedding is lexical, the
e-mail's TF-IDF vector folded into 384 dimensions by feature hashing (each term adds its
weight, with a sign, to one dimension that the SHA-256 of the term picks), L2-normalised:
the cosine of two e-mails is about that of their TF-IDF vectors. Reply suggestions
(services/replies) rank by it: e-mails that share words, not meaning; the index records
the model that made its vectors, so a promotion re-embeds them (services/replies/reindex.py).
"""

import hashlib
from pathlib import Path

import numpy as np

from model.calibration import read_review_thresholds, read_temperature
from model.linear import EMBEDDING_SIZE, LinearModel
from model.serving.predictor import ModelLoadError, Prediction, rank, read_model_info


class LinearPredictor:
    def __init__(self, model_dir: Path, max_batch_size: int):
        self.info = read_model_info(model_dir)
        try:
            self.model = LinearModel.load(model_dir)
            self.temperature = read_temperature(model_dir)
            self.review_thresholds = read_review_thresholds(model_dir)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(f"cannot load the linear model in {model_dir}: {error}") from error
        self.labels = self.model.labels
        self.max_batch_size = max_batch_size
        self.dimensions, self.signs = hashed_dimensions(self.model.vocabulary)

    @property
    def model_identity(self) -> dict:
        return {"name": self.info["name"], "version": self.info["version"]}

    def predict(self, texts: list[str], top_k: int) -> list[Prediction]:
        logits = self.model.logits(texts)
        embeddings = np.stack([self.embedding(text) for text in texts])
        return rank(logits, embeddings, self.labels, self.temperature, self.review_thresholds,
                    top_k)  # fmt: skip

    def embedding(self, text: str) -> np.ndarray:
        columns, weights = self.model.features(text)
        folded = np.zeros(EMBEDDING_SIZE, dtype=np.float32)
        np.add.at(folded, self.dimensions[columns], self.signs[columns] * weights)
        norm = np.linalg.norm(folded)
        return folded / norm if norm > 0 else folded


def hashed_dimensions(vocabulary: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per term (in column order): its dimension and its sign (+1 or -1)."""
    dimensions = np.zeros(len(vocabulary), dtype=np.int64)
    signs = np.zeros(len(vocabulary), dtype=np.float32)
    for term, column in vocabulary.items():
        value = int.from_bytes(hashlib.sha256(term.encode()).digest()[:8], "little")
        dimensions[column] = value % EMBEDDING_SIZE
        signs[column] = 1.0 if (value >> 32) & 1 else -1.0
    return dimensions, signs
