"""Managed spot training, emulated: interruptions on a plan, the wait for capacity, billing,
and the checkpoint folder synced to CheckpointConfig.S3Uri while the job trains.

A job with EnableManagedSpotTraining is interrupted as its plan says: the tag
`postwerk:spot-interruptions` of the job, else the service's setting
POSTWERK_SAGEMAKER_SPOT_INTERRUPTIONS (empty: never). A plan is

    after=20,40[;wait=S]                  at 20 and 40 seconds of training time (the time the
                                          job's containers ran, over all its attempts)
    random:seed=7,rate=0.5[;wait=S]       about `rate` interruptions per minute of training
                                          time, drawn from a generator seeded with `seed`

`wait` is how many seconds the job waits for spot capacity after an interruption before it
starts again (default 5). See training.py for what an interruption does, docs/emulation.md.
"""

import contextlib
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from emulation.sagemaker.artifacts import S3, ArtifactError
from emulation.sagemaker.protocol import validation

TAG = "postwerk:spot-interruptions"
DEFAULT_WAIT_SECONDS = 5.0
INTERRUPTED_MESSAGE = (
    "The job stopped because the managed spot training instances were interrupted."
)
MAX_WAIT_MESSAGE = "The job stopped because it exceeded the maximum allowed wait time."
RESTART_MESSAGE = "Spot capacity is available again; preparing the instances for training"


@dataclass
class Plan:
    """When a spot job is interrupted, by its training time."""

    after: list[float] = field(default_factory=list)  # seconds of training time, ascending
    rate_per_minute: float = 0.0
    seed: int = 0
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    _rng: random.Random | None = None

    @classmethod
    def parse(cls, text: str) -> "Plan":
        """A plan in the form above; ValidationException when it is not one."""
        text = text.strip()
        if not text:
            return cls()
        head, *options = (part.strip() for part in text.split(";"))
        plan = cls()
        try:
            for option in options:
                key, _, value = option.partition("=")
                if key.strip() != "wait":
                    raise ValueError(f"unknown option '{key}'")
                plan.wait_seconds = float(value)
            if head.startswith("after="):
                plan.after = sorted(float(v) for v in head[len("after=") :].split(","))
            elif head.startswith("random:"):
                values = dict(part.split("=", 1) for part in head[len("random:") :].split(","))
                plan.seed = int(values.pop("seed", 0))
                plan.rate_per_minute = float(values.pop("rate"))
                if values:
                    raise ValueError(f"unknown keys {sorted(values)}")
            else:
                raise ValueError("it starts with neither 'after=' nor 'random:'")
        except (ValueError, KeyError) as error:
            raise validation(
                f"spot interruption plan '{text}' is not 'after=S1,S2,...[;wait=S]' or "
                f"'random:seed=N,rate=R[;wait=S]' ({error})"
            ) from None
        plan._rng = random.Random(plan.seed)
        return plan

    def due(self, trained: float, tick: float) -> bool:
        """Interrupt now, at `trained` seconds of training time (checked every `tick` s)?"""
        if self.after and trained >= self.after[0]:
            while self.after and trained >= self.after[0]:
                self.after.pop(0)
            return True
        if self.rate_per_minute and self._rng is not None:
            return self._rng.random() < self.rate_per_minute * tick / 60
        return False


def plan_text(request: dict, default: str) -> str:
    """The job's plan: its tag, else the service's setting."""
    for tag in request.get("Tags", []):
        if tag.get("Key") == TAG:
            return tag.get("Value", "")
    return default


def unbilled_seconds(transitions: list[dict], end: float) -> float:
    """The time a spot job had no instances: from each interruption to the next start of
    training (or to the end, when it never trained again)."""
    unbilled, since = 0.0, None
    for transition in transitions:
        if transition["Status"] == "Interrupted" and since is None:
            since = transition["StartTime"]
        elif transition["Status"] == "Training" and since is not None:
            unbilled += transition["StartTime"] - since
            since = None
    if since is not None:
        unbilled += end - since
    return unbilled


def local_folder(base: Path, local_path: str) -> Path:
    """CheckpointConfig.LocalPath (a path in the container, under /opt/ml) in a job folder."""
    relative = Path(local_path or "/opt/ml/checkpoints").relative_to("/opt/ml")
    return base / relative


def check_local_path(local_path: str) -> None:
    path = Path(local_path)
    if not path.is_absolute() or not path.is_relative_to("/opt/ml") or path == Path("/opt/ml"):
        raise validation(
            f"CheckpointConfig.LocalPath '{local_path}': the local service runs containers "
            "with the job's folder at /opt/ml, so it must be a folder under /opt/ml"
        )


class CheckpointSync:
    """Uploads the files of a checkpoint folder to S3 as they appear or change, every
    `interval` seconds while the job trains (AWS syncs as files are written), oldest change
    first, so a pointer written after the files it names (LATEST) never arrives before them.
    A file it uploaded and the container has since removed is deleted from S3 after the
    uploads of the same pass (so S3 holds the checkpoints the folder holds, not every one)."""

    def __init__(self, folder: Path, uri: str, interval: float):
        self.folder, self.uri, self.interval = folder, uri.rstrip("/"), interval
        self.uploaded: dict[str, tuple[float, int]] = {}
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)
        self._s3 = S3()

    def __enter__(self) -> "CheckpointSync":
        # what is there already came from S3 (a restart): not uploaded again
        for path in self.folder.rglob("*"):
            if path.is_file():
                stat = path.stat()
                key = path.relative_to(self.folder).as_posix()
                self.uploaded[key] = (stat.st_mtime, stat.st_size)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sync()  # what the container wrote last (on SIGTERM)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync()

    def sync(self) -> None:
        files = []
        for path in self.folder.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # an old checkpoint being removed
                if path.is_file():
                    stat = path.stat()
                    order = (stat.st_mtime, path.name == "LATEST")  # the pointer last
                    files.append((order, path, (stat.st_mtime, stat.st_size)))
        for _, path, version in sorted(files, key=lambda item: item[0]):
            key = path.relative_to(self.folder).as_posix()
            if self.uploaded.get(key) == version:
                continue
            try:
                self._s3.upload_file(path, f"{self.uri}/{key}")
            except (ArtifactError, FileNotFoundError, OSError):
                continue  # gone since, or S3 failed: the next pass tries again
            self.uploaded[key] = version
            self.count += 1
        present = {path.relative_to(self.folder).as_posix() for _, path, _ in files}
        for key in [key for key in self.uploaded if key not in present]:
            # removed by the container (an older checkpoint): a restart need not download it
            with contextlib.suppress(ArtifactError):
                self._s3.delete(f"{self.uri}/{key}")
            del self.uploaded[key]
