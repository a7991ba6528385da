"""The multi-process path: torchrun + DDP with the gloo backend, 2 processes on the CPU
(CUDA hidden, so that a GPU machine runs the same test)."""

import json

from tests.support.jobs import LABELS, lay_out_job, make_emails, run_train
from tests.support.tiny_model import tiny_hyperparameters


def test_two_processes_train_one_model(tiny_bert, tmp_path):
    base = lay_out_job(
        tmp_path / "ml",
        tiny_hyperparameters(tiny_bert, epochs=2),
        {"train": make_emails(40, 1), "validation": make_emails(9, 2)},
    )
    result = run_train(base, POSTWERK_PROCESSES_PER_HOST="2", CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "launching 2 processes over 1 host(s)" in result.stdout
    assert "on cpu x 2" in result.stdout
    assert result.stdout.count("epoch=1;") == 1, "only rank 0 reports metrics"
    info = json.loads((base / "model" / "model_info.json").read_text())
    assert info["labels"] == LABELS
    assert (base / "model" / "model.safetensors").is_file()
    assert (base / "output" / "data" / "confusion_matrix.png").is_file()
    assert (base / "checkpoints" / "LATEST").is_file()


def test_a_failing_worker_fails_the_job_with_its_reason(tiny_bert, tmp_path):
    base = lay_out_job(
        tmp_path / "ml",
        tiny_hyperparameters(tiny_bert, model_name_or_path="/nonexistent/model"),
        {"train": make_emails(40, 1)},
    )
    result = run_train(base, POSTWERK_PROCESSES_PER_HOST="2", CUDA_VISIBLE_DEVICES="")
    assert result.returncode != 0
    assert "cannot load model" in (base / "output" / "failure").read_text()
