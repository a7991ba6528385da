"""The engines that compute logits and embeddings for the Predictor.

- openvino (CPU default): the model converted from the training job's safetensors to an
  OpenVINO IR (no pickle anywhere), cached in the model folder under openvino/ with the
  SHA-256 of its files in model_info.json; rebuilt when missing or when a hash disagrees.
  Which IR and arithmetic serve (POSTWERK_PRECISION, choose_precision): by default the
  int8 IR that training wrote and checked against fp32 (model/quantization.py, decision
  0013), else the fp32 IR with OpenVINO's own choice of arithmetic (bf16 on CPUs with AMX
  or AVX-512 BF16 such as Zen 4, f32 elsewhere).
  The choice and its reason are one line of the serve log.
- torch: CUDA in fp16, or CPU in fp32 / int8 dynamic quantization (the engine before
  OpenVINO; kept for CUDA and as a fallback, POSTWERK_ENGINE=torch).

Both take the tokenizer's numpy arrays and return float32 logits and embeddings as numpy
arrays. The embedding is the mean of the second-to-last layer's hidden states over the
e-mail's tokens, L2-normalised. Mean pooling is what all-MiniLM-L6-v2 was trained for as a
sentence encoder, and it tells apart requests within a category, where the [CLS] vector
that feeds the classifier mostly encodes the category itself. The layer below the last:
the classifier reads only [CLS] from the last layer, so OpenVINO computes less of that
layer for the other tokens; pooling the last layer cost 16% of the passes' speed on
e-mail-length texts, the layer below 8%, and both rank replies alike (bench.replies). The
reply suggestions rank earlier e-mails by it (services/replies/index.py). Measured against
ONNX Runtime (fp32 and int8) in bench/engines.py.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

IR_DIR = "openvino"
IR_FILES = ("model.xml", "model.bin")
# An IR cached with other outputs is converted again.
IR_OUTPUTS = ["logits", "embedding: mean of the second-to-last layer"]
INFO_KEY = "openvino_ir"  # in model_info.json: {"files": {name: sha256}, "outputs", "openvino"}
INT8_FILES = ("model.int8.xml", "model.int8.bin")  # beside IR_FILES, written by training
INT8_KEY = "openvino_int8"  # its entry: files, outputs, check, passed, reason (quantization.py)

log = logging.getLogger("postwerk.serving")


class EngineError(Exception):
    pass


class LogitsAndEmbedding(torch.nn.Module):
    """The classifier with the mean-pooled, normalised hidden state of its second-to-last
    layer as a second output."""

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        output = self.classifier(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=True,
        )
        hidden = output.hidden_states[-2]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return output.logits, torch.nn.functional.normalize(pooled, dim=-1)


def load_torch_model(model_dir: Path) -> LogitsAndEmbedding:
    classifier = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
    return LogitsAndEmbedding(classifier).eval()


class TorchEngine:
    def __init__(self, model_dir: Path, quantize_int8: bool):
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = load_torch_model(model_dir)
        if self.device.type == "cuda":
            model = model.half()
        elif quantize_int8:
            with warnings.catch_warnings():  # deprecated for torchao, still the simplest path
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        self.model = model.to(self.device)
        self.name = f"torch {self.device.type} " + (
            "fp16" if self.device.type == "cuda" else "int8" if quantize_int8 else "fp32"
        )

    @torch.inference_mode()
    def forward(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        tensors = {key: torch.from_numpy(value).to(self.device) for key, value in inputs.items()}
        logits, embeddings = self.model(**tensors)
        return logits.float().cpu().numpy(), embeddings.float().cpu().numpy()


def import_openvino():
    """openvino with its usage telemetry off.

    `import openvino` alone sends an event to Google Analytics unless the user opted out
    (docs.openvino.ai, "OpenVINO Telemetry"); so does each conversion. A None in sys.modules
    makes `import openvino_telemetry` fail, and OpenVINO falls back to its own no-op stub.
    """
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


class OpenVinoEngine:
    def __init__(self, model_dir: Path, threads: int, precision: str = "auto"):
        ov = import_openvino()
        ensure_ir(model_dir)
        files, hint, reason = choose_precision(model_dir, precision)
        # Unpinned: beside the rest of a local stack, a thread pinned to a busy core makes the
        # other spin at the layer's barrier (bench.pipeline: the replica's CPU per e-mail
        # 3.5 ms pinned, 3.1-3.2 unpinned; the server alone alike). A runtime cache of 100
        # shapes, not 5,000: every batch size and padded length is a shape, and the cache
        # grew the server past 600 MB (300 varied batches in-process: 613-621 MB with the
        # default, 500 MB with 100, at 758-777 vs 771-805 texts/s).
        settings = {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                    "CPU_RUNTIME_CACHE_CAPACITY": 100}  # fmt: skip
        if hint:
            settings["INFERENCE_PRECISION_HINT"] = hint
        compiled = ov.Core().compile_model(model_dir / IR_DIR / files[0], "CPU", settings)
        self.input_names = {port.get_any_name() for port in compiled.inputs}
        self.request = compiled.create_infer_request()  # one pass at a time (the batcher)
        arithmetic = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        weights = "int8" if files == INT8_FILES else "fp32"
        self.name = f"openvino {ov.__version__} CPU {weights} IR, {arithmetic}"
        log.info("engine %s: %s", self.name, reason)

    def forward(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = {key: value for key, value in inputs.items() if key in self.input_names}
        outputs = self.request.infer(feed)
        return outputs[0].copy(), outputs[1].copy()  # the request reuses its output buffers


def choose_precision(model_dir: Path, precision: str) -> tuple[tuple[str, str], str | None, str]:
    """(the IR's files, an INFERENCE_PRECISION_HINT or None for OpenVINO's own, the reason).

    auto takes the checked int8 IR when it is there and intact, else the fp32 IR (saying why
    not int8); fp32 and bf16 take the fp32 IR with that arithmetic.
    """
    if precision == "fp32":
        return IR_FILES, "f32", "fp32 asked (POSTWERK_PRECISION=fp32)"
    if precision == "bf16":
        return IR_FILES, "bf16", "bf16 asked (POSTWERK_PRECISION=bf16)"
    problem = int8_problem(model_dir)
    if problem:
        return IR_FILES, None, f"fp32, not int8: {problem}"
    # f32 for the operations left in floating point, as training checked it (bf16 on top of
    # int8 is faster on Zen 4 but unchecked; decision 0013).
    return INT8_FILES, "f32", "int8, " + int8_summary(read_info(model_dir)[INT8_KEY]["check"])


def int8_summary(check: dict) -> str:
    delta = 100 * (check["int8_accuracy"] - check["fp32_accuracy"])
    return (
        f"checked at training on {check['texts']} validation e-mails: labels agree with "
        f"fp32's on {check['label_agreement']:.1%}, accuracy {delta:+.2f} points, top score "
        f"{check['mean_score_diff']:.4f} off on average"
    )


def int8_problem(model_dir: Path) -> str | None:
    """Why the int8 IR cannot serve, or None when it can."""
    entry = read_info(model_dir).get(INT8_KEY)
    if entry is None:
        return "the model has no int8 IR (trained before it, or with quantize_int8 off)"
    if not entry.get("passed"):
        return f"the int8 IR failed its check at training ({entry.get('reason')})"
    if entry.get("outputs") != IR_OUTPUTS:
        return "the int8 IR has other outputs than this server's"
    for name, digest in entry.get("files", {}).items():
        path = model_dir / IR_DIR / name
        if not path.is_file() or sha256(path) != digest:
            return f"{IR_DIR}/{name} is missing or differs from its SHA-256 in model_info.json"
    if set(entry.get("files", {})) != set(INT8_FILES):
        return "model_info.json lists other int8 files"
    return None


def ensure_ir(model_dir: Path) -> Path:
    """The IR's model.xml in model_dir/openvino, converted first if missing or changed.

    A file lock keeps several workers from converting at once; the second finds it done.
    """
    try:
        with open(model_dir / f".{IR_DIR}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not ir_is_current(model_dir):
                convert_to_ir(model_dir)
    except OSError as error:
        raise EngineError(
            f"cannot write the OpenVINO model into {model_dir} ({error}); "
            "make the folder writable or serve with POSTWERK_ENGINE=torch"
        ) from error
    return model_dir / IR_DIR / IR_FILES[0]


def ir_is_current(model_dir: Path) -> bool:
    entry = read_info(model_dir).get(INFO_KEY, {})
    recorded = entry.get("files", {})
    return (
        entry.get("outputs") == IR_OUTPUTS
        and set(recorded) == set(IR_FILES)
        and all(
            (model_dir / IR_DIR / name).is_file() and sha256(model_dir / IR_DIR / name) == digest
            for name, digest in recorded.items()
        )
    )


def convert_to_ir(model_dir: Path) -> None:
    """Trace the safetensors model with example inputs; the IR keeps batch and length dynamic."""
    ov = import_openvino()

    model = load_torch_model(model_dir)
    example = {
        "input_ids": torch.ones(2, 8, dtype=torch.long),
        "attention_mask": torch.ones(2, 8, dtype=torch.long),
    }
    if model.classifier.config.type_vocab_size:
        example["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        converted = ov.convert_model(model, example_input=example)
    target = model_dir / IR_DIR
    target.mkdir(exist_ok=True)
    ov.save_model(converted, target / IR_FILES[0], compress_to_fp16=False)
    files = {name: sha256(target / name) for name in IR_FILES}
    entry = {"files": files, "outputs": IR_OUTPUTS, "openvino": ov.__version__}
    write_info(model_dir, read_info(model_dir) | {INFO_KEY: entry})


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_info(model_dir: Path) -> dict:
    with contextlib.suppress(OSError, json.JSONDecodeError):
        return json.loads((model_dir / "model_info.json").read_text())
    return {}


def write_info(model_dir: Path, info: dict) -> None:
    """Replaced in one rename, so a reader never sees half a file."""
    staged = model_dir / "model_info.json.tmp"
    staged.write_text(json.dumps(info, indent=2))
    os.replace(staged, model_dir / "model_info.json")
