"""The spot interruption plans and the billing of the local SageMaker service (spot.py)."""

import pytest

from emulation.sagemaker.protocol import SageMakerError
from emulation.sagemaker.spot import Plan, check_local_path, local_folder, unbilled_seconds


def test_after_plan_interrupts_once_at_each_time():
    plan = Plan.parse("after=40,20;wait=3")
    assert plan.wait_seconds == 3
    assert [plan.due(t, 0.5) for t in (10, 20, 21, 39.5, 41, 100)] == [
        False, True, False, False, True, False,
    ]  # fmt: skip


def test_random_plan_is_reproducible_with_its_seed():
    plans = [Plan.parse("random:seed=3,rate=30") for _ in range(2)]
    draws = [[plan.due(t, 0.5) for t in range(200)] for plan in plans]
    assert draws[0] == draws[1] and 0 < sum(draws[0]) < 200


@pytest.mark.parametrize("text", ["sometimes", "after=soon", "random:rate=x", "after=1;pause=2"])
def test_a_bad_plan_is_a_validation_error(text):
    with pytest.raises(SageMakerError, match="spot interruption plan"):
        Plan.parse(text)


def test_no_plan_never_interrupts():
    assert not Plan.parse("").due(1e9, 0.5)


def test_the_time_without_instances_is_not_billed():
    transitions = [
        {"Status": "Training", "StartTime": 100},
        {"Status": "Interrupted", "StartTime": 130},
        {"Status": "Starting", "StartTime": 140},
        {"Status": "Downloading", "StartTime": 141},
        {"Status": "Training", "StartTime": 145},
        {"Status": "Interrupted", "StartTime": 160},
    ]
    assert unbilled_seconds(transitions, end=200) == 15 + 40


def test_local_path_is_a_folder_of_the_job(tmp_path):
    assert local_folder(tmp_path, "") == tmp_path / "checkpoints"
    assert local_folder(tmp_path, "/opt/ml/ckpt/") == tmp_path / "ckpt"
    check_local_path("/opt/ml/ckpt")
    for outside in ("/tmp/ckpt", "relative", "/opt/ml"):
        with pytest.raises(SageMakerError):
            check_local_path(outside)


class FakeS3:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def upload_file(self, path, uri):
        self.calls.append(("put", uri.rsplit("/ck/", 1)[1]))

    def delete(self, uri):
        self.calls.append(("delete", uri.rsplit("/ck/", 1)[1]))


def test_checkpoint_sync_uploads_changes_pointer_last_and_mirrors_removals(tmp_path, monkeypatch):
    import os

    from emulation.sagemaker import spot

    monkeypatch.setattr(spot, "S3", FakeS3)
    (tmp_path / "epoch-0001").mkdir()
    (tmp_path / "epoch-0001" / "model.safetensors").write_text("restored from S3")
    sync = spot.CheckpointSync(tmp_path, "s3://b/ck", interval=3600)
    with sync:
        (tmp_path / "LATEST").write_text("epoch-0002")
        (tmp_path / "epoch-0002").mkdir()
        (tmp_path / "epoch-0002" / "model.safetensors").write_text("new")
        os.utime(tmp_path / "LATEST", (1e9, 1e9))  # an older pointer, rewritten below
        sync.sync()
        assert sync._s3.calls == [("put", "LATEST"), ("put", "epoch-0002/model.safetensors")]
        (tmp_path / "LATEST").write_text("epoch-0002")  # newest: after the files it names
        (tmp_path / "epoch-0001" / "model.safetensors").unlink()
    assert sync._s3.calls[2:] == [("put", "LATEST"), ("delete", "epoch-0001/model.safetensors")]
