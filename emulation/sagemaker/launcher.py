"""Start the local SageMaker service as a subprocess and wait until it answers.

One way for `python -m emulation`, the tests and the benchmarks to start it.
"""

import os
import subprocess
import sys
from pathlib import Path

from emulation.http_client import answers
from emulation.processes import HOST, process_tree, start_and_wait, stop_processes


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
    url = f"http://{HOST}:{port}"
    process = start_and_wait(
        [sys.executable, "-m", "emulation.sagemaker"],
        log,
        lambda: healthy(url),
        timeout,
        f"the SageMaker service on {url}",
        on_failure=stop_service,  # a restarted service may already run replicas
        env=environment,
    )
    return process, url


def stop_service(process: subprocess.Popen, timeout: float = 150) -> None:
    """SIGTERM to the service, which stops its jobs and replicas; after the timeout, SIGKILL
    to it and to whatever of theirs is left."""
    stop_processes(process_tree(process), timeout, sigterm=[process])


def healthy(url: str) -> bool:
    return answers(f"{url}/_postwerk/health")
