"""`python -m emulation`: the local AWS in the foreground until Ctrl-C.

Starts the embedded AWS backend (MiniStack), the local SageMaker service and the Kinesis
event source mapping runner on 127.0.0.1, prints the exports that point boto3, the aws CLI
and `postwerk` at them, and stops them all on Ctrl-C. State lives under --state-dir
(default .postwerk/). With --ready-file, the exports and the PIDs go to that JSON file once
everything answers (how `postwerk up` learns it is ready), and it is removed on the way out.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from emulation.esm import MappingRunner
from emulation.ministack import MiniStack
from emulation.sagemaker.launcher import ServiceError, start_service


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".postwerk"))
    parser.add_argument("--port", type=int, default=4566, help="the AWS backend")
    parser.add_argument("--sagemaker-port", type=int, default=4567)
    parser.add_argument("--ready-file", type=Path, help="written once ready, removed on stop")
    args = parser.parse_args()

    backend = MiniStack(args.state_dir.resolve(), args.port, persist_state=True)
    print(f"starting MiniStack on {backend.endpoint_url} (first run: installs it) ...")
    backend.start()
    try:
        service, sagemaker_url = start_service(
            args.state_dir.resolve() / "sagemaker",
            args.sagemaker_port,
            backend.client_environment(),
        )
    except ServiceError:
        backend.stop()
        raise
    exports = backend.client_environment() | {
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url,
    }
    runner = None
    try:
        print(f"local SageMaker service on {sagemaker_url}")
        os.environ.update(exports)  # the runner's boto3 clients talk to the backend
        runner = MappingRunner(args.state_dir.resolve() / "esm-checkpoints").start()
        print("event source mapping runner started (Kinesis and SQS)\n")
        print("In another shell, point AWS tools at them:\n")
        for name, value in exports.items():
            print(f"export {name}={value}")
        print("\nCtrl-C stops them all.")
        if args.ready_file:
            pids = [os.getpid(), backend.running_pid(), service.pid]
            ready = {"backend": "embedded", "env": exports, "pids": pids}
            write_atomically(args.ready_file, ready)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # after the children started
        signal.sigwait(stop_signals)
    finally:
        print("stopping ...")
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
        if runner is not None:
            runner.stop()
        service.terminate()
        service.wait(150)
        backend.stop()
    return 0


def write_atomically(path: Path, content: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(content, indent=2))
    partial.rename(path)


if __name__ == "__main__":
    sys.exit(main())
