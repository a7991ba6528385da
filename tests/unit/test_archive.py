"""model.archive refuses every member a model folder does not need, and leaves nothing."""

import io
import tarfile
from pathlib import Path

import pytest

from model.archive import ArchiveError, unpack


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def write_archive(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = f"content of {info.name}".encode() if info.isreg() else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def cve_2025_4517_chain() -> list[tarfile.TarInfo]:
    """The published exploit's shape (it escapes the 'data' filter on Python 3.11.7):
    links through long folder names whose resolved path exceeds PATH_MAX, so the filter's
    realpath check stops short, then a link to the parent and a file written through it."""
    long_name, steps, path, members = "d" * 247, "abcdefghijklmnop", "", []
    for step in steps:
        members.append(member(f"{path}{long_name}", tarfile.DIRTYPE))
        members.append(member(f"{path}{step}", tarfile.SYMTYPE, long_name))
        path += f"{long_name}/"
    chain = "/".join(steps) + "/" + "l" * 254
    members.append(member(chain, tarfile.SYMTYPE, "../" * len(steps)))
    members.append(member("escape", tarfile.SYMTYPE, chain + "/../"))
    members.append(member("escape/owned.txt"))
    return members


HOSTILE = {
    "symbolic link inside": [member("config.json", tarfile.SYMTYPE, "tokenizer.json")],
    "symbolic link out": [member("weights", tarfile.SYMTYPE, "/etc/passwd")],
    "hard link": [member("copy", tarfile.LNKTYPE, "config.json")],
    "character device": [member("null", tarfile.CHRTYPE)],
    "block device": [member("disk", tarfile.BLKTYPE)],
    "fifo": [member("pipe", tarfile.FIFOTYPE)],
    "absolute path": [member("/tmp/owned.txt")],
    "parent path": [member("../owned.txt")],
    "parent inside a path": [member("folder/../../owned.txt")],
    "cve-2025-4517": cve_2025_4517_chain(),
}


def test_unpacks_files_and_folders(tmp_path):
    archive = write_archive(
        tmp_path / "model.tar.gz",
        [member("config.json"), member("tokenizer", tarfile.DIRTYPE), member("./tokenizer/a")],
    )
    unpack(archive, tmp_path / "model")
    assert (tmp_path / "model" / "config.json").read_text() == "content of config.json"
    assert (tmp_path / "model" / "tokenizer" / "a").read_text() == "content of ./tokenizer/a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.tar.gz"]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_member_refuses_the_whole_archive(tmp_path, case):
    folder = tmp_path / "job"
    folder.mkdir()
    # A good member first: today's unpacking would leave it behind for the next start.
    archive = write_archive(folder / "model.tar.gz", [member("config.json"), *HOSTILE[case]])
    with pytest.raises(ArchiveError, match=r"a model folder holds none|outside the destination"):
        unpack(archive, folder / "model")
    assert [p.name for p in folder.iterdir()] == ["model.tar.gz"], "nothing left behind"
    assert not list(tmp_path.rglob("owned.txt"))


def test_a_corrupt_archive_is_an_archive_error(tmp_path):
    (tmp_path / "model.tar.gz").write_bytes(b"not a tar.gz at all")
    with pytest.raises(ArchiveError, match="not a gzip file"):
        unpack(tmp_path / "model.tar.gz", tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model.tar.gz"]


def test_never_unpacks_over_an_existing_folder(tmp_path):
    archive = write_archive(tmp_path / "model.tar.gz", [member("config.json")])
    (tmp_path / "model").mkdir()
    with pytest.raises(ArchiveError, match="already exists"):
        unpack(archive, tmp_path / "model")
