"""The mailbox door on the local stack: `python -m services.mailbox` (the door that reads
the mailboxes `postwerk mailbox add` configured, with IDLE), started once the stack is
deployed, because its buckets are the stack's outputs, and started again should it exit.
It reads each mailbox's secret from this process's environment (`env:NAME` references).

`python -m emulation.mailbox_door --stack-name postwerk` runs it alone, in the foreground
(Docker Compose runs it so); `python -m emulation` runs it beside the other parts.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from emulation.processes import process_tree, stop_processes
from emulation.smtp import StackBucket

LOOK_SECONDS = 2.0  # how often to look for the stack, and to wait before a restart


class DoorLauncher:
    def __init__(self, stack_name: str, log: Path):
        self.raw = StackBucket(stack_name, "RawBucket")
        self.artifacts = StackBucket(stack_name, "ArtifactsBucket")
        self.log = log
        self.stopping = threading.Event()
        self.process: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self.run, name="mailbox-door", daemon=True)

    def start(self) -> "DoorLauncher":
        self.thread.start()
        return self

    def run(self) -> None:
        while not self.stopping.wait(LOOK_SECONDS):
            if self.process is None or self.process.poll() is not None:
                self.launch()

    def launch(self) -> None:
        raw, artifacts = self.raw(), self.artifacts()
        if raw is None or artifacts is None:  # no stack yet
            return
        environment = os.environ | {
            "POSTWERK_RAW_BUCKET": raw,
            "POSTWERK_ARTIFACTS_BUCKET": artifacts,
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.mailbox"],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout: float) -> None:
        """The door stops within a second of IDLE or after its current fetch, or is killed
        (safe: a fetch cut short is repeated as no-ops)."""
        self.stopping.set()
        self.thread.join()
        if self.process is not None and self.process.poll() is None:
            stop_processes(process_tree(self.process), timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack-name", default="postwerk")
    parser.add_argument("--log", type=Path, default=Path("/dev/stdout"))
    args = parser.parse_args()
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # the thread inherits it
    launcher = DoorLauncher(args.stack_name, args.log).start()
    print(f"mailbox door: waiting for stack {args.stack_name}", flush=True)
    signal.sigwait(stop_signals)
    launcher.stop(timeout=5)


if __name__ == "__main__":
    main()
