"""`python -m emulation` (what `postwerk up` starts in the background) stops everything it
started on a stop signal: once ready, and while it is still starting."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from emulation.processes import free_port
from postwerk.local import port_in_use
from tests.support.aws import with_ministack_venv


@pytest.fixture
def launch(ministack_venv, tmp_path):
    """Start the launcher in a state folder of its own, with the run's MiniStack venv, with
    stdout a pipe nobody reads."""
    with_ministack_venv(tmp_path, ministack_venv)
    ports = [free_port(), free_port(), free_port()]
    command = [
        *(sys.executable, "-m", "emulation", "--state-dir", str(tmp_path)),
        *("--port", str(ports[0]), "--sagemaker-port", str(ports[1])),
        *("--smtp-port", str(ports[2])),
        *("--ready-file", str(tmp_path / "local.json")),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.stdout.close()  # the reader is gone: every line it prints fails
    yield process, ports, tmp_path
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("moment", "stop_signal"), [("starting", signal.SIGTERM), ("ready", signal.SIGHUP)]
)
def test_a_stop_signal_stops_what_started_and_frees_the_ports(launch, moment, stop_signal):
    process, ports, state_dir = launch
    if moment == "starting":  # MiniStack runs, the SageMaker service is not up yet
        wait_until(lambda: (state_dir / f"ministack-{ports[0]}.pid").exists())
    else:
        wait_until(lambda: (state_dir / "local.json").exists())
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    assert len(tree) >= 2, "the launcher and MiniStack at least"

    signalled = time.monotonic()
    process.send_signal(stop_signal)
    assert process.wait(timeout=15) == 0
    _, alive = psutil.wait_procs(tree, timeout=max(0, signalled + 15 - time.monotonic()))
    assert alive == [], [" ".join(process.cmdline()) for process in alive if process.is_running()]
    assert not any(port_in_use(port) for port in ports)
    assert not (state_dir / "local.json").exists()
