"""The linear model: TF-IDF (words and word pairs, sublinear tf) + LogisticRegression with
balanced class weights, the classic baseline that wins on small data sets.

One implementation for the training job (model/selection.py), the quality benchmark's
baseline (bench/quality.py) and the serving container (model/serving/linear.py).

Fitted with scikit-learn; stored without pickle as two files (docs/model-container.md):
- linear.json: the labels, the settings and the vocabulary in column order;
- linear.safetensors: idf (terms), coef (labels x terms) and intercept (labels), float32.
Scoring needs numpy only: the features are computed here as scikit-learn's TfidfVectorizer
computes them (lowercase, tokens of 2+ word characters, 1-2 grams, 1 + log tf, idf, L2),
which tests/unit/test_linear_model.py checks against scikit-learn's own predictions.
"""

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

JSON_FILE, WEIGHTS_FILE = "linear.json", "linear.safetensors"
KIND = "linear"
BASE_MODEL = "tfidf-logreg"
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
SETTINGS = {"ngram_range": [1, 2], "sublinear_tf": True, "C": 10.0, "max_iter": 2000}
EMBEDDING_SIZE = 384  # as MiniLM's, so that a reply index has one shape whichever serves


@dataclass(frozen=True)
class LinearModel:
    labels: list[str]
    vocabulary: dict[str, int]
    idf: np.ndarray  # (terms,)
    coef: np.ndarray  # (labels, terms)
    intercept: np.ndarray  # (labels,)

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The text's TF-IDF vector, sparse: column indices and L2-normalised weights."""
        words = TOKEN.findall(text.lower())
        terms = words + [f"{a} {b}" for a, b in pairwise(words)]
        counts = Counter(self.vocabulary[t] for t in terms if t in self.vocabulary)
        columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        weights = (1 + np.log(tf)) * self.idf[columns]
        norm = np.linalg.norm(weights)
        return columns, weights / norm if norm > 0 else weights

    def logits(self, texts: list[str]) -> np.ndarray:
        """(texts, labels) decision values; their softmax is scikit-learn's predict_proba."""
        rows = [self.features(text) for text in texts]
        scores = [self.coef[:, columns] @ weights for columns, weights in rows]
        return np.array(scores, dtype=np.float32).reshape(len(texts), -1) + self.intercept

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        terms = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        document = {"kind": KIND, "labels": self.labels, "settings": SETTINGS, "terms": terms}
        (folder / JSON_FILE).write_text(json.dumps(document, ensure_ascii=False), "utf-8")
        arrays = {"idf": self.idf, "coef": self.coef, "intercept": self.intercept}
        save_file({name: np.ascontiguousarray(a, np.float32) for name, a in arrays.items()},
                  str(folder / WEIGHTS_FILE))  # fmt: skip

    @classmethod
    def load(cls, folder: Path) -> "LinearModel":
        document = json.loads((folder / JSON_FILE).read_text("utf-8"))
        arrays = load_file(str(folder / WEIGHTS_FILE))
        vocabulary = {term: i for i, term in enumerate(document["terms"])}
        terms, labels = len(vocabulary), len(document["labels"])
        if arrays["idf"].shape != (terms,) or arrays["coef"].shape != (labels, terms):
            raise ValueError(f"{WEIGHTS_FILE} does not match the {terms} terms of {JSON_FILE}")
        return cls(document["labels"], vocabulary, arrays["idf"], arrays["coef"],
                   arrays["intercept"])  # fmt: skip


def fit(texts: list[str], labels: list[str], label_order: list[str]) -> LinearModel:
    """Fit on the texts; the rows of coef follow `label_order` (every label must occur)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=tuple(SETTINGS["ngram_range"]), sublinear_tf=True)
    classifier = LogisticRegression(
        class_weight="balanced", C=SETTINGS["C"], max_iter=SETTINGS["max_iter"]
    )
    classifier.fit(vectorizer.fit_transform(texts), labels)
    coef, intercept = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:  # one row for the second class: softmax([0, z])
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    rows = [list(classifier.classes_).index(label) for label in label_order]
    vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
    idf = vectorizer.idf_.astype(np.float32)
    return LinearModel(list(label_order), vocabulary, idf, coef[rows].astype(np.float32),
                       intercept[rows].astype(np.float32))  # fmt: skip


def version(folder: Path) -> str:
    """As a transformer's: the first 12 hex digits of the weights file's SHA-256."""
    return hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]
