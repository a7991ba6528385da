"""Where each mapping's shards stand: the last sequence number done, kept on disk so that a
restarted runner goes on where it stopped."""

from datetime import UTC, datetime
from pathlib import Path

from emulation.processes import write_atomically


class Checkpoints:
    """The last sequence number done, per mapping and shard, one small file each."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, mapping: str, shard: str) -> str | None:
        path = self.folder / mapping / shard
        return path.read_text().strip() if path.is_file() else None

    def put(self, mapping: str, shard: str, sequence_number: str) -> None:
        write_atomically(self.folder / mapping / shard, sequence_number)

    def latest(self, mapping: str, shard: str) -> datetime:
        """Where LATEST starts: fixed the first time it is asked, kept across restarts."""
        path = self.folder / mapping / f"{shard}.latest"
        if not path.is_file():
            write_atomically(path, datetime.now(UTC).isoformat())
        return datetime.fromisoformat(path.read_text())
