"""The runner: find the backend's mappings (created disabled locally), start a worker per
Kinesis shard and a few pollers per SQS queue, stop them all on stop()."""

import logging
import threading
import time
from collections import deque
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from emulation.esm.checkpoints import Checkpoints
from emulation.esm.delivery import Delivery
from emulation.esm.kinesis import ShardWorker
from emulation.esm.mapping import Invocation, Mapping
from emulation.esm.sqs import QueueWorker

log = logging.getLogger("postwerk.esm")


class MappingRunner:
    """Runs every Kinesis event source mapping of the backend until stop()."""

    def __init__(
        self,
        checkpoint_dir: Path,
        poll_seconds: float = 0.2,
        discover_seconds: float = 1.0,
        queue_pollers: int = 4,  # concurrent batches per SQS mapping (AWS starts with 5)
    ):
        config = Config(retries={"max_attempts": 1}, read_timeout=900)  # we retry ourselves
        self.kinesis = boto3.client("kinesis")
        self.lambda_ = boto3.client("lambda", config=config)
        self.sqs = boto3.client("sqs")
        self.checkpoints = Checkpoints(checkpoint_dir)
        self.delivery = Delivery(self.lambda_, self.sqs, poll_seconds)
        self.discover_seconds = discover_seconds
        self.queue_pollers = queue_pollers
        self._workers: dict[tuple[str, str], threading.Thread] = {}
        self._thread: threading.Thread | None = None

    @property
    def invocations(self) -> deque[Invocation]:
        """What was delivered and how it ended, newest last (for tests and status)."""
        return self.delivery.invocations

    def shard_worker(self, mapping: Mapping, shard: str) -> ShardWorker:
        return ShardWorker(self.delivery, self.kinesis, self.checkpoints, mapping, shard)

    def start(self) -> "MappingRunner":
        self._thread = threading.Thread(target=self._discover, name="esm", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Let the workers finish what they deliver, for `timeout` seconds at most in all (a
        batch cut off is not checkpointed: it is delivered again on the next start)."""
        self.delivery.stopping.set()
        deadline = time.monotonic() + timeout
        for worker in [self._thread, *self._workers.values()]:
            if worker is not None:
                worker.join(timeout=max(0, deadline - time.monotonic()))

    def _discover(self) -> None:
        """New mappings and shards get a worker; a deleted mapping's worker is left to end."""
        while not self.delivery.stopping.is_set():
            try:
                mappings = self.mappings()
                self.delivery.mappings = {mapping.uuid: mapping for mapping in mappings}
                for mapping in mappings:
                    if mapping.is_queue:
                        self._start_queue_pollers(mapping)
                        continue
                    if (
                        mapping.starting_position == "AT_TIMESTAMP"
                        and not mapping.starting_timestamp
                    ):
                        log.error(
                            "mapping %s: AT_TIMESTAMP without StartingPositionTimestamp "
                            "(MiniStack drops it); not run",
                            mapping.uuid,
                        )
                        continue
                    shards = self.kinesis.list_shards(StreamName=mapping.source_name)["Shards"]
                    for shard in shards:
                        key = (mapping.uuid, shard["ShardId"])
                        if key not in self._workers:
                            worker = self.shard_worker(mapping, shard["ShardId"])
                            thread = threading.Thread(
                                target=worker.run, daemon=True, name=f"esm-{shard['ShardId']}"
                            )
                            self._workers[key] = thread
                            thread.start()
            except (ClientError, BotoCoreError) as error:
                log.warning("cannot list event source mappings: %s", error)
            self.delivery.stopping.wait(self.discover_seconds)

    def _start_queue_pollers(self, mapping: Mapping) -> None:
        for number in range(self.queue_pollers):
            key = (mapping.uuid, f"poller-{number}")
            if key not in self._workers:
                worker = QueueWorker(self.delivery, self.sqs, mapping)
                thread = threading.Thread(target=worker.run, daemon=True, name=f"esm-sqs-{number}")
                self._workers[key] = thread
                thread.start()

    def mappings(self) -> list[Mapping]:
        pages = self.lambda_.get_paginator("list_event_source_mappings").paginate()
        return [
            Mapping.from_api(doc)
            for page in pages
            for doc in page["EventSourceMappings"]
            if ":kinesis:" in doc.get("EventSourceArn", "")
            or ":sqs:" in doc.get("EventSourceArn", "")
        ]
