"""Checkpoints to resume an interrupted job (SageMaker syncs checkpoints/ to S3).

One folder per checkpoint: after each epoch (epoch-0003), and within one every
`checkpoint_every_steps` steps or on SIGTERM (epoch-0003-step-0000412; model/preemption.py).
The file LATEST names the newest complete one, and is
replaced atomically after that folder is written, so a crash never leaves a half checkpoint.
Weights are safetensors; the small trainer state is loaded with torch's weights-only loader.
"""

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from model.contract import InputError


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    best_macro_f1: float = float("-inf")
    best_validation_loss: float = float("inf")  # breaks ties between equal macro-F1
    epochs_without_improvement: int = 0
    # within the epoch after `epoch`: batches done, and its running loss (for its metrics)
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_seen: int = 0

    def record_validation(self, macro_f1: float, loss: float) -> bool:
        """Note an epoch's validation scores; True if they are the best so far."""
        if (macro_f1, -loss) > (self.best_macro_f1, -self.best_validation_loss):
            self.best_macro_f1, self.best_validation_loss = macro_f1, loss
            self.epochs_without_improvement = 0
            return True
        self.epochs_without_improvement += 1
        return False


@dataclass
class Checkpoint:
    progress: Progress
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor] | None
    trainer: dict  # optimizer, scheduler, grad scaler, RNG


def save(directory: Path, checkpoint: Checkpoint, fingerprint: dict) -> None:
    progress = checkpoint.progress
    folder = directory / f"epoch-{progress.epoch:04d}"
    if progress.epoch_step:
        folder = folder.with_name(f"{folder.name}-step-{progress.step:07d}")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(contiguous(checkpoint.model), folder / "model.safetensors")
    if checkpoint.best_model is not None:  # none before the first epoch's validation
        save_file(contiguous(checkpoint.best_model), folder / "best_model.safetensors")
    state = {
        "progress": asdict(checkpoint.progress),
        "fingerprint": fingerprint,
        **checkpoint.trainer,
    }
    torch.save(state, folder / "trainer_state.pt")
    pointer = directory / "LATEST.tmp"
    pointer.write_text(folder.name)
    os.replace(pointer, directory / "LATEST")
    for old in directory.glob("epoch-*"):
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def load(directory: Path, fingerprint: dict) -> Checkpoint | None:
    """The newest checkpoint, if it was made by this job (same data and settings).

    A different fingerprint means another job's checkpoint: resuming it would silently
    train on the wrong data or settings, so it is an error.
    """
    pointer = directory / "LATEST"
    if not pointer.exists():
        return None
    folder = directory / pointer.read_text().strip()
    try:
        state = torch.load(folder / "trainer_state.pt", weights_only=True)
        model = load_file(folder / "model.safetensors")
        best = folder / "best_model.safetensors"
        best_model = load_file(best) if best.exists() else None
    except (OSError, RuntimeError) as error:
        raise InputError(f"checkpoint {folder} is unreadable ({error}); remove it") from error
    differences = fingerprint_differences(state.pop("fingerprint"), fingerprint)
    if differences:
        raise InputError(
            f"{directory} holds the checkpoint of another job (different {', '.join(differences)});"
            " remove it, or give this job its own checkpoint path"
        )
    progress = Progress(**state.pop("progress"))
    return Checkpoint(progress=progress, model=model, best_model=best_model, trainer=state)


def contiguous(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A snapshot on the CPU: always a copy, never a view of the live weights."""
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in weights.items()
    }


def fingerprint_differences(saved: dict, current: dict) -> list[str]:
    """What changed between two jobs: the names of changed settings, 'data', 'labels'."""
    saved_settings, settings = saved["hyperparameters"], current["hyperparameters"]
    changed = [name for name in settings if saved_settings.get(name) != settings[name]]
    return changed + [key for key in ("data", "labels") if saved[key] != current[key]]
