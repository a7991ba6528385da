"""The int8 model, written at the end of training beside the safetensors (decision 0013).

NNCF's post-training quantization (nncf.quantize, ModelType.TRANSFORMER) of the OpenVINO
IR, its activation ranges calibrated on CALIBRATION_TEXTS training e-mails. Before it is
kept, the int8 model is checked against the fp32 IR on the validation e-mails:
- accuracy within hp.int8_max_accuracy_drop of fp32's (0.5 points by default),
- the top label equal to fp32's on at least MIN_LABEL_AGREEMENT of them,
- the calibrated top score within SCORE_TOLERANCE of fp32's on average.
Passed: openvino/model.int8.xml and .bin, their SHA-256 and the measured figures in
model_info.json (engine.INT8_KEY); serving prefers it. Failed: no files, and the figures with
the reason in model_info.json, so serving says why it serves fp32.
"""

import logging
from pathlib import Path

import numpy as np

from model.calibration import softmax
from model.serving.engine import (
    INT8_FILES,
    INT8_KEY,
    IR_DIR,
    IR_OUTPUTS,
    ensure_ir,
    import_openvino,
    read_info,
    sha256,
    write_info,
)

log = logging.getLogger("postwerk.train")

CALIBRATION_TEXTS = 300
MIN_LABEL_AGREEMENT = 0.95  # budget_failures says 95%
SCORE_TOLERANCE = 0.02  # mean |int8 - fp32| of the calibrated top score


def import_nncf():
    """nncf with its usage telemetry off: it sends through openvino_telemetry, which
    import_openvino has already replaced with None."""
    import_openvino()
    import nncf

    return nncf


def write_int8(
    model_dir: Path,
    calibration: list[dict[str, np.ndarray]],
    validation: list[dict[str, np.ndarray]],
    truth: np.ndarray,
    temperature: float,
    max_accuracy_drop: float,
) -> dict:
    """Quantize, check, and write the int8 IR if it passes; returns model_info's entry.

    calibration: one e-mail per item; validation: batches; truth: validation's label ids.
    """
    ov, nncf = import_openvino(), import_nncf()
    core = ov.Core()
    fp32 = core.read_model(ensure_ir(model_dir))
    int8 = nncf.quantize(
        fp32,
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
    )
    check = compare(core, fp32, int8, validation, truth, temperature)
    failures = budget_failures(check, max_accuracy_drop)
    entry = {"outputs": IR_OUTPUTS, "openvino": ov.__version__, "nncf": nncf.__version__,
             "calibration_texts": len(calibration), "check": check,
             "passed": not failures, "reason": "; ".join(failures)}  # fmt: skip
    folder = model_dir / IR_DIR
    for name in INT8_FILES:
        (folder / name).unlink(missing_ok=True)
    if not failures:
        ov.save_model(int8, folder / INT8_FILES[0], compress_to_fp16=False)
        entry["files"] = {name: sha256(folder / name) for name in INT8_FILES}
    write_info(model_dir, read_info(model_dir) | {INT8_KEY: entry})
    return entry


def compare(core, fp32, int8, batches, truth, temperature) -> dict:
    """Both models on the validation batches, with f32 as the precision hint for both."""
    settings = {"INFERENCE_PRECISION_HINT": "f32"}
    reference, quantized = (
        np.concatenate([compiled(batch)[0] for batch in batches])
        for compiled in (core.compile_model(model, "CPU", settings) for model in (fp32, int8))
    )
    labels = reference.argmax(axis=1), quantized.argmax(axis=1)
    scores = [softmax(logits, temperature).max(axis=1) for logits in (reference, quantized)]
    score_diff = np.abs(scores[1] - scores[0])
    return {
        "texts": len(truth),
        "fp32_accuracy": float((labels[0] == truth).mean()),
        "int8_accuracy": float((labels[1] == truth).mean()),
        "label_agreement": float((labels[0] == labels[1]).mean()),
        "mean_score_diff": float(score_diff.mean()),
        "max_score_diff": float(score_diff.max()),
    }


def budget_failures(check: dict, max_accuracy_drop: float) -> list[str]:
    drop = check["fp32_accuracy"] - check["int8_accuracy"]
    agreement, score_diff = check["label_agreement"], check["mean_score_diff"]
    failures = []
    if drop > max_accuracy_drop:
        failures.append(
            f"accuracy {100 * drop:.2f} points below fp32's (budget {100 * max_accuracy_drop:.2f})"
        )
    if agreement < MIN_LABEL_AGREEMENT:
        failures.append(f"labels agree with fp32's on {agreement:.1%} (budget 95%)")
    if score_diff > SCORE_TOLERANCE:
        failures.append(
            f"top scores {score_diff:.3f} off fp32's on average (budget {SCORE_TOLERANCE})"
        )
    return failures
