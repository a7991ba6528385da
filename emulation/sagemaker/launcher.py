"""Start the local SageMaker service as a subprocess and wait until it answers; free ports.

One way for `python -m emulation`, the tests and the benchmarks to start it.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"


class ServiceError(Exception):
    """The service exited or did not answer in time; the message holds the end of its log."""


def start_service(
    state_dir: Path, port: int, aws_environment: dict[str, str], timeout: float = 30, **settings
) -> tuple[subprocess.Popen, str]:
    """`python -m emulation.sagemaker` on HOST:port with its state (and log) in state_dir;
    its jobs and endpoints use the AWS backend that aws_environment names. Extra settings
    are POSTWERK_SAGEMAKER_* variables. Returns the process and the service's URL."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"service-{port}.log"
    environment = (
        os.environ
        | aws_environment
        | settings
        | {
            "POSTWERK_SAGEMAKER_PORT": str(port),
            "POSTWERK_SAGEMAKER_STATE_DIR": str(state_dir),
        }
    )
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "emulation.sagemaker"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    try:
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise ServiceError(f"the SageMaker service did not start on {url}: {tail}")
            time.sleep(0.1)
    except BaseException:  # also an interrupt: a restarted service may already run replicas
        stop_service(process)
        raise
    return process, url


def stop_service(process: subprocess.Popen, timeout: float = 150) -> None:
    """SIGTERM (the service stops its jobs and replicas), SIGKILL after the timeout."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_postwerk/health", timeout=1, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False
