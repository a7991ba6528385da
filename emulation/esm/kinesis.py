"""One Kinesis shard of one mapping: read in order, deliver batch by batch, retry, bisect,
expire, checkpoint."""

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from emulation.esm.checkpoints import Checkpoints
from emulation.esm.delivery import Delivery
from emulation.esm.mapping import Mapping

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 64 * 1024  # the synchronous invoke limit, less headroom
MAX_BACKOFF_SECONDS = 5.0

log = logging.getLogger("postwerk.esm")


@dataclass
class ShardWorker:
    """Reads one shard for one mapping and delivers its records, in order."""

    delivery: Delivery
    kinesis: Any  # boto3 Kinesis client
    checkpoints: Checkpoints
    mapping: Mapping
    shard: str
    buffer: deque = field(default_factory=deque)
    iterator: str | None = None

    def run(self) -> None:
        while not self.delivery.stopping.is_set():
            current = self.delivery.current(self.mapping.uuid)
            if current is None:  # the mapping was deleted
                return
            self.mapping = current  # UpdateEventSourceMapping applies from the next batch
            try:
                batch = self.next_batch()
                if batch:
                    self.deliver(batch)
                else:
                    self.delivery.stopping.wait(self.delivery.poll_seconds)
            except (ClientError, BotoCoreError) as error:  # the backend is restarting, say
                log.warning("mapping %s %s: %s", self.mapping.uuid, self.shard, error)
                self.iterator = None  # reopen from the checkpoint
                self.buffer.clear()
                self.delivery.stopping.wait(1)

    # --- reading ---------------------------------------------------------------------------

    def next_batch(self) -> list[dict]:
        """Up to BatchSize records; waits up to the batching window for a fuller batch."""
        deadline = time.monotonic() + self.mapping.window_seconds
        while True:
            if len(self.buffer) < self.mapping.batch_size:
                self.read()
            full = len(self.buffer) >= self.mapping.batch_size
            if self.buffer and (full or time.monotonic() >= deadline):
                return self.take()
            if not self.buffer:
                return []
            if self.delivery.stopping.wait(
                min(self.delivery.poll_seconds, deadline - time.monotonic())
            ):
                return []

    def read(self) -> None:
        if self.iterator is None:
            self.iterator = self.kinesis.get_shard_iterator(
                StreamName=self.mapping.source_name, ShardId=self.shard, **self.start()
            )["ShardIterator"]
        answer = self.kinesis.get_records(ShardIterator=self.iterator, Limit=10_000)
        self.iterator = answer.get("NextShardIterator")
        self.buffer.extend(answer["Records"])

    def start(self) -> dict[str, Any]:
        done = self.checkpoints.get(self.mapping.uuid, self.shard)
        if done:
            return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": done}
        position = self.mapping.starting_position
        if position == "LATEST":
            latest = self.checkpoints.latest(self.mapping.uuid, self.shard)
            return {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": latest}
        if position == "AT_TIMESTAMP":
            return {
                "ShardIteratorType": "AT_TIMESTAMP",
                "Timestamp": self.mapping.starting_timestamp,
            }
        return {"ShardIteratorType": "TRIM_HORIZON"}

    def take(self) -> list[dict]:
        batch, size = [], 0
        while self.buffer and len(batch) < self.mapping.batch_size:
            record_size = len(self.buffer[0]["Data"]) * 4 // 3 + 600  # base64 + the envelope
            if batch and size + record_size > MAX_PAYLOAD_BYTES:
                break
            batch.append(self.buffer.popleft())
            size += record_size
        return batch

    # --- delivering ------------------------------------------------------------------------

    def deliver(self, batch: list[dict]) -> None:
        """Invoke until every record succeeded or went to the on-failure destination."""
        pending: deque[tuple[list[dict], int]] = deque([(batch, 0)])
        while pending and not self.delivery.stopping.is_set():
            records, attempts = pending.popleft()
            records = self.drop_expired(records)
            if not records:
                continue
            outcome = self.delivery.invoke(self.mapping, self.shard, records)
            if outcome.ok:
                self.done(records, "ok")
                continue
            if outcome.failed_from is not None:  # partial batch response
                if outcome.failed_from:
                    self.done(records[: outcome.failed_from], "partial")
                records = records[outcome.failed_from :]
            elif self.mapping.bisect and len(records) > 1:
                self.journal(records, "error")
                middle = len(records) // 2
                pending.extendleft([(records[middle:], attempts), (records[:middle], attempts)])
                continue
            else:
                self.journal(records, "error")
            attempts += 1
            if 0 <= self.mapping.max_retries < attempts:
                self.delivery.send_on_failure(
                    self.mapping,
                    self.shard,
                    records,
                    "RetryAttemptsExhausted",
                    attempts,
                    outcome.error,
                )
                self.done(records, "exhausted")
                continue
            self.delivery.stopping.wait(min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** (attempts - 1)))
            pending.appendleft((records, attempts))

    def drop_expired(self, records: list[dict]) -> list[dict]:
        """Records past MaximumRecordAgeInSeconds go to the on-failure destination; they
        are the oldest, so the front of the batch."""
        if self.mapping.max_record_age < 0:
            return records
        oldest = datetime.now(UTC).timestamp() - self.mapping.max_record_age
        count = 0
        while (
            count < len(records)
            and records[count]["ApproximateArrivalTimestamp"].timestamp() < oldest
        ):
            count += 1
        if count:
            expired = records[:count]
            self.delivery.send_on_failure(self.mapping, self.shard, expired, "RecordAgeExceeded", 0)
            self.done(expired, "expired")
        return records[count:]

    def done(self, records: list[dict], outcome: str) -> None:
        self.journal(records, outcome)
        self.checkpoints.put(self.mapping.uuid, self.shard, records[-1]["SequenceNumber"])

    def journal(self, records: list[dict], outcome: str) -> None:
        sequence_numbers = [r["SequenceNumber"] for r in records]
        self.delivery.journal(self.mapping, self.shard, sequence_numbers, outcome)
