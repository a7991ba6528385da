"""The replicas that serve an endpoint: each a run of the serving container (a process or a
Docker container), and a fleet of them per endpoint config, routed by variant weight.

A serverless variant (ServerlessConfig) keeps its replicas in a `Serverless` pool: none
while idle, one started by the first request after that (the request waits for it: the cold
start), stopped again after `idle_seconds` without a request; ProvisionedConcurrency keeps
it warm. Requests beyond MaxConcurrency in flight are refused (ThrottlingException)."""

import logging
import random
import threading
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

from emulation.http_client import answers
from emulation.sagemaker.artifacts import LogStream
from emulation.sagemaker.containers import Containers

DRAIN_SECONDS = 60  # how long an old fleet may finish its requests after a swap

log = logging.getLogger("postwerk.sagemaker")


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

    def __init__(
        self,
        config_name: str,
        variants: list[tuple[str, float, list[Replica]]],
        serverless: dict[str, "Serverless"] | None = None,
    ):
        """variants: (name, weight, replicas); serverless: the pools of the serverless
        variants by name (their replicas are the pool's list)."""
        self.config_name = config_name
        self.variants = variants
        self.serverless = serverless or {}
        self._turn = count()

    @property
    def replicas(self) -> list[Replica]:
        return [replica for _, _, replicas in self.variants for replica in replicas]

    def pick(self, excluded: set[int], target: str = "") -> "Replica | Serverless | None":
        """A ready replica: a variant by weight (only `target` when given), then round
        robin within it; a serverless variant answers with its pool, ready or not."""
        candidates = []
        for variant, weight, replicas in self.variants:
            if target and variant != target:
                continue
            if not target and weight <= 0:  # AWS sends a variant of weight 0 no traffic
                continue
            pool = self.serverless.get(variant)
            if pool is not None:
                if id(pool) not in excluded:
                    candidates.append((weight or 1.0, pool))
            elif ready := [r for r in replicas if r.ready and id(r) not in excluded]:
                candidates.append((weight or 1.0, ready))
        if not candidates:
            return None
        weights = [weight for weight, _ in candidates]
        chosen = random.choices([c for _, c in candidates], weights=weights)[0]
        if isinstance(chosen, Serverless):
            return chosen
        return chosen[next(self._turn) % len(chosen)]

    def has_variant(self, name: str) -> bool:
        return any(variant == name for variant, _, _ in self.variants)

    def in_flight(self) -> int:
        """Requests not answered yet (a serverless variant's waiting for a cold start too)."""
        waiting = sum(pool.in_flight for pool in self.serverless.values())
        return waiting + sum(replica.in_flight for replica in self.replicas)

    def stop(self) -> None:
        for replica in self.close():
            replica.stop()

    def close(self) -> list[Replica]:
        """Every replica, those of serverless variants being started too; none starts after."""
        starting = [replica for pool in self.serverless.values() for replica in pool.close()]
        return [*self.replicas, *starting]

    def drain(self) -> None:
        """Stop once the requests in flight are answered (DRAIN_SECONDS at most)."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop()


class Throttled(Exception):
    """A serverless variant has MaxConcurrency requests in flight already."""


class Serverless:
    """A serverless variant's replicas: none while idle (unless provisioned), one started
    on demand, stopped after `idle_seconds` without a request.

    One replica serves all of the variant's concurrent requests (a local process serves
    several at once; AWS runs one per concurrent request): MaxConcurrency is enforced on
    the requests in flight, not on replicas, and ProvisionedConcurrency > 0 keeps that
    replica warm."""

    def __init__(
        self,
        config: dict,
        replicas: list[Replica],
        make: Callable[[int], Replica],
        start: Callable[[Replica], None],
        idle_seconds: float,
    ):
        """replicas: the variant's list in the fleet (started ones are added to it, stopped
        ones removed); make(number): a new replica; start(replica): start it and wait
        until it answers /ping (ReplicaError when it does not)."""
        self.max_concurrency = int(config["MaxConcurrency"])
        self.provisioned = int(config.get("ProvisionedConcurrency") or 0)
        self.replicas, self._make, self._start = replicas, make, start
        self.idle_seconds = idle_seconds
        self.in_flight = 0
        self.last_request = time.monotonic()
        self.cold_starts: list[float] = []  # seconds each start-on-demand took
        self._numbers = count(len(replicas))
        self.starting: Replica | None = None  # the replica a cold start is waiting for
        self.closed = False  # the fleet stops: no more starts
        self._lock = threading.Lock()  # in_flight and the replicas list
        self._starting = threading.Lock()  # one cold start at a time; the others wait on it

    def admit(self) -> None:
        """Count a request in, or refuse it (Throttled) at MaxConcurrency."""
        with self._lock:
            if self.in_flight >= self.max_concurrency:
                raise Throttled(f"{self.in_flight} requests in flight")
            self.in_flight += 1
            self.last_request = time.monotonic()

    def done(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.last_request = time.monotonic()

    def ready(self) -> Replica | None:
        with self._lock:
            return next((r for r in self.replicas if r.ready), None)

    def replica(self) -> Replica:
        """A ready replica, started if there is none (blocks for the cold start)."""
        if (replica := self.ready()) is not None:
            return replica
        with self._starting:
            if (replica := self.ready()) is not None:
                return replica  # another request's cold start
            with self._lock:
                if self.closed:
                    raise ReplicaError("the endpoint is stopping")
                replica = self.starting = self._make(next(self._numbers))
            began = time.monotonic()
            try:
                self._start(replica)
            finally:
                self.starting = None
            if self.closed:  # stopped meanwhile: close() stopped it too
                replica.stop()
                raise ReplicaError("the endpoint is stopping")
            self.cold_starts.append(time.monotonic() - began)
            log.info(
                "endpoint %s: variant %s started a replica in %.2f s (cold start)",
                replica.endpoint, replica.variant, self.cold_starts[-1],
            )  # fmt: skip
            with self._lock:
                self.replicas.append(replica)
            return replica

    def touch(self) -> None:
        """Idle from now on (the fleet just took the traffic)."""
        with self._lock:
            self.last_request = time.monotonic()

    def close(self) -> list[Replica]:
        """No more starts; the replica being started, to stop with the others."""
        with self._lock:
            self.closed = True
            return [self.starting] if self.starting is not None else []

    def idle_replicas(self) -> list[Replica]:
        """The replicas to stop now (taken out of the pool): all of them once the variant
        has had no request for idle_seconds, unless it is provisioned."""
        with self._lock:
            idle = time.monotonic() - self.last_request
            if self.provisioned or self.in_flight or idle < self.idle_seconds:
                return []
            stopped = list(self.replicas)
            self.replicas.clear()
            for replica in stopped:
                replica.ready = False
            return stopped

    def forget(self, replica: Replica) -> None:
        """A replica that died: the next request starts another."""
        with self._lock:
            if replica in self.replicas:
                self.replicas.remove(replica)
        replica.ready = False
