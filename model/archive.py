"""Unpack a model archive (model.tar.gz) without trusting it, on any Python version.

A model folder holds regular files and folders only, so a member of any other kind (a
symbolic or hard link, a device, a FIFO), an absolute path or a path leaving the folder
refuses the whole archive. The checks are our own: tarfile's 'data' filter lets a chain of
links escape on Python before 3.11.13, 3.12.11 and 3.13.4 (CVE-2025-4517).

The archive is unpacked into a fresh staging folder beside the destination, which is renamed
into place only once every member is out, so a refused archive leaves nothing behind.

Standard library only: the local SageMaker service (emulation/) imports it without PyTorch.
"""

import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath


class ArchiveError(Exception):
    """The archive is unreadable or holds something a model folder never needs."""


def unpack(archive: Path, destination: Path) -> None:
    """Unpack `archive` into `destination`, which must not exist yet."""
    if destination.exists():
        raise ArchiveError(f"{destination} already exists")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from a container's user
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                check(member)
            for member in members:
                extract(tar, member, staging)
        staging.rename(destination)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ArchiveError(str(error)) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check(member: tarfile.TarInfo) -> None:
    """Refuse a member that is not a plain file or folder inside the destination."""
    if not (member.isreg() or member.isdir()):
        raise ArchiveError(f"'{member.name}' is a {kind(member)}: a model folder holds none")
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ArchiveError(f"'{member.name}' points outside the destination folder")


def kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return f"member of type {member.type!r}"


def extract(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path) -> None:
    """Folders and files only (checked), with our own permissions, never the archive's."""
    target = staging.joinpath(*PurePosixPath(member.name).parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with source, target.open("wb") as sink:
        shutil.copyfileobj(source, sink)
