"""The files a replica serves: the model archive from S3, unpacked once per model (safely:
model/archive.py), and a base dir per replica whose model/ points at it."""

import time
from pathlib import Path

from emulation.sagemaker.artifacts import S3, ArtifactError
from emulation.sagemaker.store import Document
from model.archive import ArchiveError, unpack


def model_folder(state_dir: Path, model: Document) -> Path:
    """model.tar.gz from S3, unpacked safely once per model."""
    folder = state_dir / "models" / f"{model['ModelName']}-{model['CreationTime']:.0f}"
    unpacked = folder / "model"
    if unpacked.is_dir():
        return unpacked
    url = model["PrimaryContainer"].get("ModelDataUrl")
    if not url:
        raise ArtifactError("the model has no ModelDataUrl")
    archive = folder / "model.tar.gz"
    S3().download_file(url, archive)
    try:
        unpack(archive, unpacked)
    except ArchiveError as error:
        raise ArtifactError(f"cannot unpack {url}: {error}") from error
    finally:
        archive.unlink()
    return unpacked


def replica_folder(state_dir: Path, endpoint: str, model_dir: Path) -> Path:
    """A base dir per replica whose model/ is the shared unpacked model."""
    base = state_dir / "replicas" / f"{endpoint}-{time.time_ns()}"
    base.mkdir(parents=True)
    (base / "model").symlink_to(model_dir.resolve(), target_is_directory=True)
    return base
