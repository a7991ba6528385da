"""The SageMaker container contract: the /opt/ml tree, its config files, the metric lines.

SageMaker mounts everything under /opt/ml; locally `SAGEMAKER_BASE_DIR` relocates it.
See https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo.html
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class InputError(Exception):
    """A problem with the job's input that the user can fix; its message is one line."""


@dataclass(frozen=True)
class SageMakerPaths:
    base: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    def channel_dir(self, channel: str) -> Path:
        return self.base / "input" / "data" / channel

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.base / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base / "checkpoints"


def read_config(path: Path) -> dict[str, Any]:
    """Read one of the JSON config files; an absent file is an empty config."""
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {path.name}: {error}") from error
    if not isinstance(config, dict):
        raise InputError(f"{path.name} must hold a JSON object, not {type(config).__name__}")
    return config


def write_failure(paths: SageMakerPaths, reason: str) -> None:
    """SageMaker shows the failure file's text as the job's FailureReason."""
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(reason + "\n", encoding="utf-8")


# Metric lines printed by training look like `validation_accuracy=0.9123;`. These are ready
# MetricDefinitions for CreateTrainingJob / CreateHyperParameterTuningJob.
METRIC_NAMES = (
    "epoch",
    "train_loss",
    "train_samples_per_second",
    "validation_loss",
    "validation_accuracy",
    "validation_macro_f1",
    "test_accuracy",
    "test_macro_f1",
    "temperature",  # fitted on validation after training (model/calibration.py)
    "test_ece",  # expected calibration error, 15 bins, before and after the temperature
    "test_calibrated_ece",
    "validation_ece",  # instead of test_*, when there is no test channel
    "validation_calibrated_ece",
)
METRIC_DEFINITIONS = [
    {"Name": name, "Regex": rf"{name}=([-+0-9.eE]+|nan);"} for name in METRIC_NAMES
]


def format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.6g};" for name, value in metrics.items())
