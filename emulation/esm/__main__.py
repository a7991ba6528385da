"""`python -m emulation.esm`: the runner alone (Docker Compose runs it so), until SIGTERM.
Checkpoints go to POSTWERK_ESM_CHECKPOINT_DIR."""

import os
import signal
from pathlib import Path

from emulation.esm.runner import MappingRunner


def main() -> None:
    checkpoints = Path(os.environ.get("POSTWERK_ESM_CHECKPOINT_DIR", ".postwerk/esm-checkpoints"))
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before the threads start
    runner = MappingRunner(checkpoints).start()
    signal.sigwait(stop_signals)
    runner.stop()


if __name__ == "__main__":
    main()
