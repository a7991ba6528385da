"""The optimizer side of training: AdamW, warm-up/decay schedule, mixed precision, and the
loss (cross-entropy, weighted per label when the labels are imbalanced)."""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers import get_linear_schedule_with_warmup

from model.hyperparameters import Hyperparameters


class Precision:
    """Mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling)."""

    def __init__(self, device: torch.device):
        self.device_type = device.type
        self.dtype = None
        if device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(enabled=self.dtype == torch.float16)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


@dataclass
class Optimization:
    """AdamW with linear warm-up and decay, mixed precision and gradient clipping."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    class_weights: torch.Tensor | None = None  # None: the model's own (unweighted) loss

    @classmethod
    def create(
        cls, model, hp: Hyperparameters, total_steps: int, device: torch.device, class_weights=None
    ):
        optimizer = torch.optim.AdamW(
            parameter_groups(model, hp.weight_decay),
            lr=hp.learning_rate,
            fused=device.type == "cuda",
        )
        warmup_steps = round(hp.warmup_ratio * total_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
        return cls(optimizer, scheduler, Precision(device), class_weights)

    def loss(self, model, batch) -> torch.Tensor:
        output = model(**batch)
        if self.class_weights is None:
            return output.loss
        return torch.nn.functional.cross_entropy(
            output.logits.float(), batch["labels"], weight=self.class_weights
        )

    def step(self, model, batch) -> float:
        """One optimizer step on one batch; returns the batch's mean loss."""
        with self.precision.autocast():
            loss = self.loss(model, batch)
        scaler = self.precision.scaler
        scaler.scale(loss).backward()
        scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(
            [p for group in self.optimizer.param_groups for p in group["params"]], 1.0
        )
        scaler.step(self.optimizer)
        scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.precision.scaler.state_dict(),
            "rng": torch.get_rng_state(),
        }

    def restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.precision.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (as in BERT's recipe)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
