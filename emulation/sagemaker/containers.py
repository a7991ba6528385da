"""How training jobs and endpoint replicas run on this backend: as processes of
`python -m model train|serve`, with the SageMaker container contract's environment.

The Docker Compose backend will start the `model` image instead, behind the same two calls.
"""

import os
import signal
import subprocess
from pathlib import Path


class LocalProcesses:
    def __init__(self, python: str):
        self.python = python

    def train(self, base_dir: Path, environment: dict[str, str]) -> subprocess.Popen:
        return self._start("train", base_dir, environment)

    def serve(self, base_dir: Path, port: int, environment: dict[str, str]) -> subprocess.Popen:
        contract = {"SAGEMAKER_BIND_TO_PORT": str(port), "POSTWERK_BIND_HOST": "127.0.0.1"}
        return self._start("serve", base_dir, environment | contract)

    def _start(self, command: str, base_dir: Path, environment: dict[str, str]):
        return subprocess.Popen(
            [self.python, "-m", "model", command],
            env=os.environ
            | environment
            | {"SAGEMAKER_BASE_DIR": str(base_dir), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopped with its children
        )


def terminate(process: subprocess.Popen, grace_seconds: float = 30) -> int:
    """SIGTERM to the process group (SageMaker's stop signal), SIGKILL after the grace."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.wait()
