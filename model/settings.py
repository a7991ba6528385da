"""Runtime settings of the model container, from the environment.

The SAGEMAKER_* variables are the container contract; POSTWERK_* are postwerk's own knobs.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POSTWERK_", frozen=True)

    base_dir: Path = Field(Path("/opt/ml"), validation_alias="SAGEMAKER_BASE_DIR")

    # Serving (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html)
    port: PositiveInt = Field(8080, validation_alias="SAGEMAKER_BIND_TO_PORT")
    workers: PositiveInt = Field(1, validation_alias="SAGEMAKER_MODEL_SERVER_WORKERS")
    timeout_seconds: PositiveFloat = Field(60.0, validation_alias="SAGEMAKER_MODEL_SERVER_TIMEOUT")
    bind_host: str = "0.0.0.0"  # the container contract; tests bind to 127.0.0.1
    top_k: PositiveInt = 3
    max_batch_size: PositiveInt = 64  # e-mails the batcher gathers for the model at once
    # e-mails per forward pass of OpenVINO (CPU): a gathered batch is sorted by length and
    # cut into passes of this many. On Zen 4 (2 cores, int8, short texts in requests of 64)
    # 16 a pass made 248-271 texts/s, 64 made 131-133; 187 and 159 under more load
    # (decision 0013).
    pass_size: PositiveInt = 16
    # How long a request that finds the model idle waits for others (batching.py). Under 32
    # clients, 2 ms against 0: 10% less server CPU per request, p99 326-463 against 483-586 ms.
    batch_gather_ms: NonNegativeFloat = 2.0
    # CPU only (CUDA serves in fp16): int8 dynamic quantization of the Linear layers.
    # On Banking77: x2.5 throughput for -0.26 accuracy points (bench/results/accuracy.json).
    quantize_int8: bool = True  # for engine torch
    # CPU engine: OpenVINO (an IR converted from the safetensors and cached in the model
    # folder) or torch. CUDA always serves with torch in fp16. bench/results/serving.json.
    engine: Literal["openvino", "torch"] = "openvino"
    # OpenVINO's precision: auto serves the int8 IR that training checked against fp32 and
    # falls back to fp32 when it is absent, failed or altered (the serve log says which and
    # why); fp32 or bf16 force the fp32 IR in that arithmetic. Decision 0013.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Bounds on what one client may cost (docs/model-container.md, "Serve"). Past them: the status.
    max_instances: PositiveInt = 1000  # per request: 413
    max_request_target_bytes: PositiveInt = 8 * 1024  # the URL: 414
    max_header_bytes: PositiveInt = 32 * 1024  # all header fields together: 431
    max_headers: PositiveInt = 100  # header fields: 431
    header_timeout_seconds: PositiveFloat = 10.0  # from a request's first byte to its headers: 408
    body_timeout_seconds: PositiveFloat = 60.0  # from the headers to the body's end: 408
    max_idle_connections: PositiveInt = 100  # beyond it, the longest-idle one is closed

    # Training: processes per host; default one per GPU, or one on a CPU-only host.
    processes_per_host: PositiveInt | None = None
