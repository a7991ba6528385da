"""The serving side loads safetensors only and unpacks archives safely."""

import io
import shutil
import tarfile

import pytest

from model.serving.predictor import ModelLoadError, Predictor, unpack_archive


def test_refuses_a_model_without_safetensors(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"no model\.safetensors"):
        Predictor(model_dir, max_batch_size=8)


def test_unpacks_model_tar_gz(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        for path in (trained_job / "model").iterdir():
            tar.add(path, arcname=path.name)
    predictor = Predictor(model_dir, max_batch_size=8)
    assert predictor.predict(["Kündigung"], top_k=1)[0].label in predictor.labels


def test_archive_members_cannot_escape_the_model_folder(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    with pytest.raises(ModelLoadError, match="outside the destination"):
        unpack_archive(model_dir)
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in model_dir.iterdir()] == ["model.tar.gz"], "nothing left to serve"


def test_refuses_a_model_without_its_info(trained_job, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained_job / "model", model_dir)
    (model_dir / "model_info.json").write_text('{"name": "x"}')
    with pytest.raises(ModelLoadError, match=r"lacks \['version'\]"):
        Predictor(model_dir, max_batch_size=8)
    (model_dir / "model_info.json").unlink()
    with pytest.raises(ModelLoadError, match=r"cannot read model_info\.json"):
        Predictor(model_dir, max_batch_size=8)
