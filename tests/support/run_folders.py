"""Folders of the whole test run, shared by its xdist workers."""

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder of the test run, built by the first xdist worker that asks for it while the
    others wait: what takes seconds to make is made once, not once per worker."""
    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # the workers' folders lie side by side in it
    folder, built = run_root / name, run_root / f"{name}.built"
    with (run_root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            built.touch()
    return folder
