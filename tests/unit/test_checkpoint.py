import torch

from model import checkpoint
from model.checkpoint import Checkpoint, Progress, fingerprint_differences


def test_best_epoch_is_by_macro_f1_then_lower_loss():
    progress = Progress()
    assert progress.record_validation(0.5, 1.0)
    assert not progress.record_validation(0.4, 0.1), "worse F1 loses even with lower loss"
    assert progress.record_validation(0.5, 0.9), "same F1, lower loss wins"
    assert not progress.record_validation(0.5, 0.9)
    assert progress.epochs_without_improvement == 1
    assert (progress.best_macro_f1, progress.best_validation_loss) == (0.5, 0.9)


def fingerprint(**changes):
    return {
        "hyperparameters": {"learning_rate": 1e-4, "seed": 1},
        "data": "abc",
        "labels": ["a"],
    } | changes


def test_fingerprint_differences_name_what_changed():
    assert fingerprint_differences(fingerprint(), fingerprint()) == []
    changed = fingerprint(hyperparameters={"learning_rate": 1e-3, "seed": 1}, data="xyz")
    assert fingerprint_differences(fingerprint(), changed) == ["learning_rate", "data"]


def test_save_and_load_round_trip_keeps_only_the_newest(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    for epoch in (1, 2):
        progress = Progress(epoch=epoch, step=10 * epoch)
        trainer = {"rng": torch.get_rng_state(), "optimizer": {"state": {}, "param_groups": []}}
        checkpoint.save(tmp_path, Checkpoint(progress, weights, weights, trainer), fingerprint())
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-0002"]
    loaded = checkpoint.load(tmp_path, fingerprint())
    assert loaded.progress.step == 20
    assert torch.equal(loaded.model["w"], weights["w"])
    assert loaded.trainer["optimizer"] == {"state": {}, "param_groups": []}


def test_no_checkpoint_is_none(tmp_path):
    assert checkpoint.load(tmp_path, fingerprint()) is None


def test_a_weights_snapshot_does_not_follow_training():
    """The best epoch's weights must survive the epochs after it (CPU tensors included)."""
    layer = torch.nn.Linear(2, 2)
    snapshot = checkpoint.contiguous(layer.state_dict())
    before = snapshot["weight"].clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert torch.equal(snapshot["weight"], before)
