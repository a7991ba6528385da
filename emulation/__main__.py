"""`python -m emulation`: the local AWS in the foreground until Ctrl-C.

Starts the embedded AWS backend (MiniStack), the local SageMaker service, the Kinesis
event source mapping runner, the SMTP server that stands in for SES receiving
(emulation/smtp.py) on 127.0.0.1 and, once the stack is deployed, the mailbox door
(emulation/mailbox_door.py), prints the exports that point boto3, the aws CLI
and `postwerk` at them, and stops them all on Ctrl-C, SIGTERM or SIGHUP, also when the
signal comes while they are still starting. State lives under --state-dir (default
.postwerk/). With --ready-file, the exports and the PIDs go to that JSON file once
everything answers (how `postwerk up` learns it is ready), and it is removed on the way out.
"""

import argparse
import json
import os
import signal
import sys
from contextlib import ExitStack, suppress
from pathlib import Path

import psutil

from emulation import smtp
from emulation.esm.runner import MappingRunner
from emulation.mailbox_door import DoorLauncher
from emulation.ministack import MiniStack
from emulation.processes import HOST, stop_processes, write_atomically
from emulation.sagemaker.launcher import start_service, stop_service

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# `postwerk up` promises that a stop ends within 15 s. Each part gets a bounded share
# (door 1 + runner 2 + service 5 + MiniStack 3), then whatever still runs is killed (1 s).
DOOR_STOP_SECONDS = 1
RUNNER_STOP_SECONDS = 2
SERVICE_STOP_SECONDS = 5
MINISTACK_STOP_SECONDS = 3
LEFT_OVER_STOP_SECONDS = 1


class StopRequested(Exception):
    """A stop signal arrived; everything started so far is stopped on the way out."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".postwerk"))
    parser.add_argument("--port", type=int, default=4566, help="the AWS backend")
    parser.add_argument("--sagemaker-port", type=int, default=4567)
    parser.add_argument("--smtp-port", type=int, default=smtp.DEFAULT_PORT)
    parser.add_argument(
        "--smtp-recipients",
        default=",".join(smtp.DEFAULT_RECIPIENTS),
        help="addresses and domains mail is accepted for (comma-separated)",
    )
    parser.add_argument("--ready-file", type=Path, help="written once ready, removed on stop")
    args = parser.parse_args()
    for number in STOP_SIGNALS:
        signal.signal(number, request_stop)
    started = ExitStack()
    try:
        exports = start(args, started)
        say("\nIn another shell, point AWS tools at them:\n")
        for name, value in exports.items():
            say(f"export {name}={value}")
        say("\nCtrl-C stops them all.")
        while True:
            signal.pause()
    except StopRequested:
        pass
    finally:
        stop_everything(started)
    return 0


def start(args: argparse.Namespace, started: ExitStack) -> dict[str, str]:
    """Start the four parts, each registered to be stopped (last first) as soon as it
    exists; returns the exports once all answer."""
    state_dir = args.state_dir.resolve()
    backend = MiniStack(state_dir, args.port, persist_state=True)
    started.callback(say, "stopped.")
    started.callback(backend.stop, MINISTACK_STOP_SECONDS)  # by PID file: safe before start
    first_run = "; first run: installs it" if backend.needs_install() else ""
    say(f"starting MiniStack on {backend.endpoint_url}{first_run} ...")
    backend.start()
    service, sagemaker_url = start_service(
        state_dir / "sagemaker", args.sagemaker_port, backend.client_environment()
    )
    started.callback(stop_service, service, SERVICE_STOP_SECONDS)
    say(f"local SageMaker service on {sagemaker_url}")
    exports = backend.client_environment() | {
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": sagemaker_url,
    }
    os.environ.update(exports)  # the runner's boto3 clients talk to the backend
    runner = MappingRunner(state_dir / "esm-checkpoints").start()
    started.callback(runner.stop, RUNNER_STOP_SECONDS)
    say("event source mapping runner started (Kinesis and SQS)")
    stack_name = os.environ.get("POSTWERK_STACK_NAME", "postwerk")
    recipients = args.smtp_recipients.split(",")
    mail = smtp.start(args.smtp_port, recipients, smtp.StackBucket(stack_name))
    started.callback(mail.stop)
    say(f"SMTP (SES receiving) on {HOST}:{args.smtp_port} for {args.smtp_recipients}")
    exports |= {
        "POSTWERK_SMTP_PORT": str(args.smtp_port),
        "POSTWERK_SMTP_RECIPIENTS": args.smtp_recipients,
    }
    door = DoorLauncher(stack_name, state_dir / "logs" / "mailbox-door.log").start()
    started.callback(door.stop, DOOR_STOP_SECONDS)
    say("mailbox door: reads the mailboxes `postwerk mailbox add` configures, once deployed")
    if args.ready_file:
        pids = [os.getpid(), backend.running_pid(), service.pid]
        ready = {"backend": "embedded", "env": exports, "pids": pids}
        write_atomically(args.ready_file, json.dumps(ready, indent=2))
        started.callback(args.ready_file.unlink, missing_ok=True)
    started.callback(say, "stopping ...")
    return exports


def stop_everything(started: ExitStack) -> None:
    """Stop the parts (last started first), each within its share; then stop every process
    below this one that is still there: a replica whose service was killed, a child whose
    start a signal interrupted before anyone held its PID."""
    ignore_stop_signals()
    below = psutil.Process().children(recursive=True)  # before parents exit and lose them
    try:
        started.close()
    finally:
        stop_processes(below, LEFT_OVER_STOP_SECONDS)


def request_stop(number: int, frame) -> None:
    """The first stop signal unwinds main(); later ones are ignored so the stop completes."""
    ignore_stop_signals()
    raise StopRequested(signal.Signals(number).name)


def ignore_stop_signals() -> None:
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def say(line: str) -> None:
    """Print, unless nobody reads any more (a closed pipe or terminal): output never stops
    a shutdown."""
    with suppress(OSError):
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
