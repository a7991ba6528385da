"""The model behind the endpoint: load it safely, classify texts in length-sorted batches."""

import contextlib
import ctypes
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer

from model.archive import ArchiveError, unpack
from model.calibration import read_review_thresholds, read_temperature
from model.data import tokenize
from model.serving.engine import EngineError, OpenVinoEngine, TorchEngine

TRIM_EVERY_PASSES = 10
# Batches are padded to a multiple of 16 tokens: fewer shapes for OpenVINO to compile and
# cache. Measured in-process (int8, AMD EPYC, 1,500 passes of 1-16 short texts): 373 texts/s
# and 742 MB resident padded to the longest, 528 texts/s and 551 MB to a multiple of 16.
PAD_MULTIPLE = 16


class ModelLoadError(Exception):
    pass


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    top_k: list[dict]
    embedding: np.ndarray  # float32, L2-normalised (see engine.py)
    review_threshold: float | None  # the label's, from calibration.json; None without one


def unpack_archive(model_dir: Path) -> Path:
    """Where the model is: model_dir, or model_dir/unpacked when SageMaker (or a user) left
    it packed as model.tar.gz (unpacked safely once, see model.archive)."""
    archive = model_dir / "model.tar.gz"
    if (model_dir / "model_info.json").exists() or not archive.exists():
        return model_dir
    unpacked = model_dir / "unpacked"
    if not unpacked.is_dir():
        try:
            unpack(archive, unpacked)
        except ArchiveError as error:
            raise ModelLoadError(f"cannot unpack {archive}: {error}") from error
    return unpacked


def return_free_heap_to_os() -> None:
    """Hand the heap's free pages back to the OS (glibc's malloc_trim).

    glibc keeps freed memory for reuse, and forward passes over ever-changing batch shapes
    fragment it: measured with MiniLM int8 under load, a worker grew from 474 to 733 MB
    over 4,300 requests; trimmed every 10 passes, it stayed at 515-553 MB with unchanged
    throughput.
    """
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def read_model_info(model_dir: Path) -> dict:
    """model_info.json, written by training: the model's name, version and max_length."""
    try:
        info = json.loads((model_dir / "model_info.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"cannot read model_info.json in {model_dir}: {error}") from error
    missing = {"name", "version"} - info.keys()
    if missing:
        raise ModelLoadError(f"model_info.json in {model_dir} lacks {sorted(missing)}")
    return info


class Predictor:
    def __init__(
        self,
        model_dir: Path,
        max_batch_size: int,
        quantize_int8: bool = False,
        engine: str = "torch",
        threads: int | None = None,
        precision: str = "auto",
        pass_size: int | None = None,
    ):
        model_dir = unpack_archive(model_dir)
        if not (model_dir / "model.safetensors").exists():
            raise ModelLoadError(
                f"no model.safetensors in {model_dir} (only safetensors is loaded)"
            )
        self.info = read_model_info(model_dir)
        try:  # fitted by training on validation; T = 1 and no thresholds for models before it
            self.temperature = read_temperature(model_dir)
            self.review_thresholds = read_review_thresholds(model_dir)
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise ModelLoadError(f"cannot read calibration.json in {model_dir}: {error}") from error
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.engine = load_engine(model_dir, engine, quantize_int8, threads, precision)
        return_free_heap_to_os()  # the fp32 weights that quantization or conversion left
        config = AutoConfig.from_pretrained(model_dir)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        # A model with token types whose tokenizer gives none (XLM-RoBERTa's, which many
        # multilingual models use) reads zeros, its default; the OpenVINO IR must be fed them.
        self.zero_token_types = getattr(config, "type_vocab_size", 0) > 0
        self.max_length = self.info.get("max_length", 128)
        self.long_text = self.info.get("long_text", "head")  # as the model was trained
        self.max_batch_size = max_batch_size
        # OpenVINO on a CPU: passes of pass_size e-mails (settings.py); else the whole batch.
        on_cpu = isinstance(self.engine, OpenVinoEngine) and pass_size
        self.pass_size = min(pass_size, max_batch_size) if on_cpu else max_batch_size
        self.passes = 0

    @property
    def model_identity(self) -> dict:
        return {"name": self.info["name"], "version": self.info["version"]}

    def predict(self, texts: list[str], top_k: int) -> list[Prediction]:
        """Sorted by length so each forward pass pads little; results in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Prediction | None] = [None] * len(texts)
        for start in range(0, len(order), self.pass_size):
            chunk = order[start : start + self.pass_size]
            for i, prediction in zip(
                chunk, self._forward([texts[i] for i in chunk], top_k), strict=True
            ):
                results[i] = prediction
        self.passes += 1
        if self.passes % TRIM_EVERY_PASSES == 0:
            return_free_heap_to_os()
        return results

    def _forward(self, texts: list[str], top_k: int) -> list[Prediction]:
        encoded = tokenize(self.tokenizer, texts, self.max_length, self.long_text)
        multiple = PAD_MULTIPLE if self.max_length % PAD_MULTIPLE == 0 else None  # not past it
        batch = self.tokenizer.pad(encoded, pad_to_multiple_of=multiple, return_tensors="np")
        inputs = {key: value.astype(np.int64) for key, value in batch.items()}
        if self.zero_token_types and "token_type_ids" not in inputs:
            inputs["token_type_ids"] = np.zeros_like(inputs["input_ids"])
        logits, embeddings = self.engine.forward(inputs)
        return rank(logits, embeddings, self.labels, self.temperature, self.review_thresholds,
                    top_k)  # fmt: skip


def rank(logits: np.ndarray, embeddings: np.ndarray, labels: list[str], temperature: float,
         review_thresholds: dict[str, float], top_k: int) -> list[Prediction]:  # fmt: skip
    """Each row's top_k labels by logit, with calibrated scores (the softmax of the logits
    over the temperature) and the top label's review threshold."""
    k = min(top_k, len(labels))
    indices = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    probabilities = softmax(logits / temperature)
    predictions = []
    for row, row_indices, embedding in zip(
        probabilities, indices.tolist(), embeddings, strict=True
    ):
        ranked = [{"label": labels[i], "score": round(float(row[i]), 6)} for i in row_indices]
        label, score = ranked[0]["label"], ranked[0]["score"]
        threshold = review_thresholds.get(label)
        predictions.append(Prediction(label, score, ranked, embedding, threshold))
    return predictions


def softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def load_predictor(model_dir: Path, max_batch_size: int, quantize_int8: bool = False,
                   engine: str = "torch", threads: int | None = None, precision: str = "auto",
                   pass_size: int | None = None):  # fmt: skip
    """The predictor for model_info.json's "kind": the linear model's, or the transformer's
    (models trained before "kind" existed are transformers)."""
    model_dir = unpack_archive(model_dir)
    if read_model_info(model_dir).get("kind") == "linear":
        from model.serving.linear import LinearPredictor

        return LinearPredictor(model_dir, max_batch_size)
    return Predictor(model_dir, max_batch_size, quantize_int8, engine, threads, precision,
                     pass_size)  # fmt: skip


def load_engine(
    model_dir: Path, engine: str, quantize_int8: bool, threads: int | None, precision: str
):
    """OpenVINO on CPUs when asked (in precision); torch on CUDA (fp16) whatever is asked, or
    when asked."""
    if engine == "openvino" and not torch.cuda.is_available():
        try:
            return OpenVinoEngine(model_dir, threads or torch.get_num_threads(), precision)
        except EngineError as error:
            raise ModelLoadError(str(error)) from error
    return TorchEngine(model_dir, quantize_int8)
