"""The replicas that serve an endpoint: each a run of the serving container (a process or a
Docker container), and a fleet of them per endpoint config, routed by variant weight."""

import random
import threading
import time
from itertools import count
from pathlib import Path

from emulation.http_client import answers
from emulation.sagemaker.artifacts import LogStream
from emulation.sagemaker.containers import Containers

DRAIN_SECONDS = 60  # how long an old fleet may finish its requests after a swap


class ReplicaError(Exception):
    """A replica did not start; the message carries the end of its log."""


class Replica:
    """One serving container on a free local port."""

    def __init__(
        self,
        endpoint: str,
        variant: str,
        number: int,
        image: str,
        base_dir: Path,
        env: dict,
        log: tuple[str, str] | None = None,  # (group, stream): batch transform has its own
    ):
        self.endpoint, self.variant, self.number = endpoint, variant, number
        self.image, self.base_dir, self.environment = image, base_dir, env
        self.containers: Containers | None = None
        self.process = None
        self.url = ""
        self.ready = False  # answers /ping and takes traffic
        self.restarting = False
        self.stopping = False
        self.in_flight = 0
        self.last_lines: list[str] = []
        self.log_group, self.log_stream_name = log or (
            f"/aws/sagemaker/Endpoints/{endpoint}",
            f"{variant}/replica-{number}",
        )

    def start(self, containers: Containers) -> None:
        self.containers = containers
        self.process, self.url = containers.serve(self.image, self.base_dir, self.environment)
        threading.Thread(target=self._pump_log, daemon=True).start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not answers(f"{self.url}/ping", timeout=2):
            if self.process.poll() is not None:
                raise ReplicaError(
                    f"the serving container exited with code "
                    f"{self.process.returncode}: {self.tail()}"
                )
            if time.monotonic() > deadline:
                raise ReplicaError(f"no /ping 200 within {timeout:.0f} s: {self.tail()}")
            time.sleep(0.1)
        self.ready = True

    def stop(self) -> None:
        self.stopping, self.ready = True, False
        if self.process is not None:
            self.containers.terminate(self.process, grace_seconds=30)

    def died(self) -> bool:
        return not self.stopping and self.process is not None and self.process.poll() is not None

    def tail(self) -> str:
        return " | ".join(self.last_lines[-5:]) or "no output"

    def _pump_log(self) -> None:
        stream = LogStream(self.log_group, self.log_stream_name)
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.last_lines = [*self.last_lines[-19:], line]
            stream.write(line)
        stream.flush()


class Fleet:
    """The replicas serving one endpoint config, by variant with its weight."""

    def __init__(self, config_name: str, variants: list[tuple[str, float, list[Replica]]]):
        self.config_name = config_name
        self.variants = variants
        self._turn = count()

    @property
    def replicas(self) -> list[Replica]:
        return [replica for _, _, replicas in self.variants for replica in replicas]

    def pick(self, excluded: set[int]) -> Replica | None:
        """A ready replica: a variant by weight, then round robin within it."""
        candidates = [
            (weight, ready)
            for _, weight, replicas in self.variants
            if weight > 0  # AWS sends a variant of weight 0 no traffic
            and (ready := [r for r in replicas if r.ready and id(r) not in excluded])
        ]
        if not candidates:
            return None
        weights = [weight for weight, _ in candidates]
        ready = random.choices([r for _, r in candidates], weights=weights)[0]
        return ready[next(self._turn) % len(ready)]

    def in_flight(self) -> int:
        return sum(replica.in_flight for replica in self.replicas)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def drain(self) -> None:
        """Stop once the requests in flight are answered (DRAIN_SECONDS at most)."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()
