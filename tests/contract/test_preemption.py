"""SIGTERM and step checkpoints (model/preemption.py): a run stopped twice mid-epoch and
restarted on its checkpoints ends with the weights of a run that was never stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.preemption import EXIT_CODE
from tests.support.jobs import ROOT, lay_out_job, make_emails, run_train
from tests.support.tiny_model import tiny_hyperparameters

pytestmark = pytest.mark.long  # make test-long: minutes of jobs and endpoints

# float32 on the CPU, the same batches and RNG: the weights agree to the last bits; the
# tolerance only allows for a different summation order in another torch build
TOLERANCE = 1e-5


def job(base: Path, tiny_bert: Path) -> Path:
    hyperparameters = tiny_hyperparameters(tiny_bert, epochs=12, checkpoint_every_steps=3)
    channels = {"train": make_emails(60, 1), "validation": make_emails(12, 2)}
    return lay_out_job(base, hyperparameters, channels)


def stop_at_a_step_checkpoint(base: Path, after_step: int) -> str:
    """Start the container, SIGTERM it once it has checkpointed past `after_step` within an
    epoch, and return its output; it must exit with 143 after a checkpoint of its own."""
    env = os.environ | {"SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "model", "train"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    latest = base / "checkpoints" / "LATEST"
    deadline = time.monotonic() + 120
    while not (latest.exists() and "-step-" in latest.read_text()
               and int(latest.read_text().rsplit("-", 1)[1]) > after_step):  # fmt: skip
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == EXIT_CODE, output
    assert "stopped on SIGTERM" in output
    assert not (base / "output" / "failure").exists()
    return output


def test_a_run_stopped_twice_ends_as_one_never_stopped(tiny_bert, tmp_path):
    straight = job(tmp_path / "straight", tiny_bert)
    result = run_train(straight)
    assert result.returncode == 0, result.stderr

    stopped = job(tmp_path / "stopped", tiny_bert)
    stop_at_a_step_checkpoint(stopped, after_step=4)
    first = (stopped / "checkpoints" / "LATEST").read_text()
    second_output = stop_at_a_step_checkpoint(stopped, after_step=int(first.rsplit("-", 1)[1]))
    assert "resumed from checkpoint" in second_output
    result = run_train(stopped)
    assert result.returncode == 0, result.stderr
    assert "resumed from checkpoint" in result.stderr + result.stdout

    expected = load_file(straight / "model" / "model.safetensors")
    actual = load_file(stopped / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    worst = max((expected[k] - actual[k]).abs().max().item() for k in expected)
    info = {
        name: json.loads((base / "model" / "model_info.json").read_text())["metrics"]
        for name, base in (("straight", straight), ("stopped", stopped))
    }
    print(f"\nstopped twice vs never: max weight difference {worst:.2e}, metrics {info}")
    assert worst <= TOLERANCE
    assert info["stopped"] == info["straight"]
    assert all(torch.equal(expected[k], actual[k]) for k in expected) or worst <= TOLERANCE
