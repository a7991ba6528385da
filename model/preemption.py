"""When the training loop checkpoints between epochs: every `checkpoint_every_steps`
optimizer steps, and at once on SIGTERM (SageMaker's stop, or a spot interruption: the
container has 120 s before SIGKILL), after which the run ends with exit code 143.

A step checkpoint records the position in the epoch (model/checkpoint.py, Progress), so a
restarted job skips the batches it has done and ends with the weights of a run that was
never interrupted (the batches of an epoch and the RNG state are restored exactly).
"""

import logging
import signal
import threading

log = logging.getLogger("postwerk.train")

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class Interrupted(Exception):
    """SIGTERM came; the checkpoint is written and the run ends."""


class Preemption:
    def __init__(self, every_steps: int, listen: bool):
        """`listen`: catch SIGTERM (only where one process trains: the ranks of a
        distributed job would have to agree on the step first, so they keep the default)."""
        self.every_steps = every_steps
        self.signalled = threading.Event()
        if listen and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        if self.signalled.is_set():
            raise Interrupted  # a second SIGTERM: no more waiting for a step to end
        log.info("SIGTERM: checkpointing after this step, then exiting")
        self.signalled.set()

    def due(self, step: int) -> bool:
        """A checkpoint after this optimizer step?"""
        return self.signalled.is_set() or (self.every_steps > 0 and step % self.every_steps == 0)

    def check(self) -> None:
        """After a checkpoint: end the run if SIGTERM came."""
        if self.signalled.is_set():
            raise Interrupted
