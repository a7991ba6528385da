"""The CPU engines bench.serving compares in-process, on the same texts and batches.

Served: torch (fp32, int8 dynamic quantisation) and OpenVINO (model.serving.engine): as
it serves by default (training's int8 IR where there is one) and with the fp32 IR in f32,
in passes of the server's pass_size.
Evaluated only: ONNX Runtime, fp32 (graph optimisations ORT_ENABLE_ALL) and int8
(onnxruntime.quantization.quantize_dynamic), from a torch.onnx export of the same
safetensors; measured when onnxruntime and onnx are installed
(`pip install onnxruntime onnx`), else left out with a note.
"""

import gc
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import InferencePass, predictor_pass
from model.settings import Settings

PASS_SIZE = Settings.model_fields["pass_size"].default


class OnnxRuntimeEngine:
    def __init__(self, onnx_file: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}

    def forward(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feed = {key: value for key, value in inputs.items() if key in self.input_names}
        logits, embeddings = self.session.run(None, feed)
        return logits, embeddings


def export_onnx(model_dir: Path, folder: Path) -> dict[str, Path]:
    """fp32 and int8 ONNX files of the model in model_dir, written into folder."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from model.serving.engine import load_torch_model

    model = load_torch_model(model_dir)
    names = ["input_ids", "attention_mask"]
    if model.classifier.config.type_vocab_size:
        names.append("token_type_ids")
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in names}
    files = {"fp32": folder / "model.onnx", "int8": folder / "model-int8.onnx"}
    torch.onnx.export(
        model,
        (),
        str(files["fp32"]),
        kwargs=example,
        input_names=names,
        output_names=["logits", "embedding"],
        dynamic_axes={
            **{n: {0: "batch", 1: "length"} for n in names},
            "logits": {0: "batch"},
            "embedding": {0: "batch"},
        },
        dynamo=False,
        opset_version=17,
    )
    logging.disable(logging.INFO)  # a line per tensor
    try:
        quantize_dynamic(str(files["fp32"]), str(files["int8"]), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return files


def engine_passes(
    model_dir: Path, texts: list[str], batch: int, threads: int, scratch: Path
) -> dict[str, InferencePass]:
    """In-process passes of each engine over the same texts (labels and time)."""
    from model.serving.predictor import Predictor

    def run(make: Callable[[], Predictor]) -> InferencePass:
        predictor = make()
        result = predictor_pass(predictor, texts, batch)
        del predictor
        gc.collect()
        return result

    def openvino(precision: str) -> Predictor:
        return Predictor(model_dir, batch, engine="openvino", threads=threads,
                         precision=precision, pass_size=PASS_SIZE)  # fmt: skip

    passes = {
        "torch fp32": run(lambda: Predictor(model_dir, batch, engine="torch")),
        "torch int8": run(lambda: Predictor(model_dir, batch, quantize_int8=True, engine="torch")),
        "openvino": run(lambda: openvino("auto")),
        "openvino fp32": run(lambda: openvino("fp32")),
    }
    if not all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx")):
        print("onnxruntime or onnx not installed: ONNX Runtime left out")
        return passes
    for precision, onnx_file in export_onnx(model_dir, scratch).items():

        def with_ort(onnx_file=onnx_file) -> Predictor:
            predictor = Predictor(model_dir, batch, engine="torch")
            predictor.engine = OnnxRuntimeEngine(onnx_file, threads)
            return predictor

        passes[f"onnxruntime {precision}"] = run(with_ort)
    return passes
