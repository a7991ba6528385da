"""`python -m emulation`: the local AWS in the foreground until Ctrl-C.

Starts the embedded AWS backend (MiniStack), the local SageMaker service and the Kinesis
event source mapping runner on 127.0.0.1, prints the exports that point boto3, the aws CLI
and `postwerk` at them, and stops them all on Ctrl-C. State lives under --state-dir
(default .postwerk/).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from emulation.esm import MappingRunner
from emulation.ministack import MiniStack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".postwerk"))
    parser.add_argument("--port", type=int, default=4566, help="the AWS backend")
    parser.add_argument("--sagemaker-port", type=int, default=4567)
    args = parser.parse_args()

    backend = MiniStack(args.state_dir.resolve(), args.port, persist_state=True)
    print(f"starting MiniStack on {backend.endpoint_url} (first run: installs it) ...")
    backend.start()
    sagemaker_url = f"http://127.0.0.1:{args.sagemaker_port}"
    exports = backend.client_environment() | {
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url,
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "emulation.sagemaker"],
        env=os.environ
        | exports
        | {
            "POSTWERK_SAGEMAKER_PORT": str(args.sagemaker_port),
            "POSTWERK_SAGEMAKER_STATE_DIR": str(args.state_dir.resolve() / "sagemaker"),
        },
    )
    runner = None
    try:
        wait_until_healthy(f"{sagemaker_url}/_postwerk/health", service)
        print(f"local SageMaker service on {sagemaker_url}")
        os.environ.update(exports)  # the runner's boto3 clients talk to the backend
        runner = MappingRunner(args.state_dir.resolve() / "esm-checkpoints").start()
        print("Kinesis event source mapping runner started\n")
        print("In another shell, point AWS tools at them:\n")
        for name, value in exports.items():
            print(f"export {name}={value}")
        print("\nCtrl-C stops them all.")
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # after the children started
        signal.sigwait(stop_signals)
    finally:
        print("stopping ...")
        if runner is not None:
            runner.stop()
        service.terminate()
        service.wait(150)
        backend.stop()
    return 0


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the SageMaker service exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the SageMaker service did not answer {url} within {timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
