"""The real SageMaker clients, each in a venv of its own (their botocore pins clash with the
project's), created once under .postwerk/clients/ and reused while the pins are the same."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENVS = ROOT / ".postwerk" / "clients"
SCRIPTS = Path(__file__).resolve().parent

# verified against the local service (2026-12)
SDK2 = ("sagemaker==2.257.7",)
SDK3 = ("sagemaker==3.27.0",)
CLI = ("awscli==1.46.3",)


def client_python(requirements: tuple[str, ...]) -> Path:
    """The Python of a venv with these requirements, created on first use (pip: ~30-60 s)."""
    venv = VENVS / "-".join(r.replace("==", "-") for r in requirements)
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if stamp.is_file() and stamp.read_text() == " ".join(requirements):
        return python
    for command in (
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *requirements],
    ):  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    stamp.write_text(" ".join(requirements))
    return python
