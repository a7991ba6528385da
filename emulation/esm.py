"""Kinesis and SQS -> Lambda event source mappings with AWS's semantics (DESIGN section 4).

MiniStack's own Kinesis poller ignores failures and loses records, so locally every mapping
is created disabled and this runner does the polling: it reads the mappings from the
backend's Lambda API, reads each shard in order, and invokes the function synchronously
through the backend's Lambda Invoke API. Honoured settings:

- BatchSize, MaximumBatchingWindowInSeconds (and the 6 MB invoke payload limit);
- StartingPosition TRIM_HORIZON, LATEST, AT_TIMESTAMP. LATEST is fixed when the runner
  first sees the mapping (it looks every second), not at its creation: MiniStack reports
  creation times in whole seconds, which would let in records from before. MiniStack also
  drops StartingPositionTimestamp, so an AT_TIMESTAMP mapping from it is refused (logged);
  LocalStack and AWS return it;
- one batch in flight per shard, records in order;
- FunctionResponseTypes=[ReportBatchItemFailures]: success up to the lowest failed sequence
  number, a retry from there; a malformed response fails the whole batch, as on AWS;
- BisectBatchOnFunctionError: a failing batch is split in two and each half retried
  (splitting does not count as a retry), so a poison record ends up alone;
- MaximumRetryAttempts (-1: until the records expire), MaximumRecordAgeInSeconds (-1: never);
- DestinationConfig.OnFailure to an SQS queue, with AWS's on-failure record;
- checkpoints on disk (the last sequence number done per mapping and shard), so a restarted
  runner goes on where it stopped: nothing lost, nothing skipped.

SQS mappings (QueueWorker): BatchSize and the batching window, ReportBatchItemFailures
(only what succeeded is deleted), a fixed number of concurrent pollers; redelivery and the
dead-letter queue are the queue's own (visibility timeout, RedrivePolicy).

Not handled: ParallelizationFactor > 1 (one batch per shard at a time), resharding, SNS
destinations, tumbling windows, SQS FIFO ordering by message group.
"""

import base64
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 64 * 1024  # the synchronous invoke limit, less headroom
MAX_BACKOFF_SECONDS = 5.0

log = logging.getLogger("postwerk.esm")


@dataclass(frozen=True)
class Mapping:
    """One mapping's settings as ListEventSourceMappings returns them."""

    uuid: str
    function_arn: str
    source_arn: str
    batch_size: int
    window_seconds: float
    starting_position: str
    starting_timestamp: datetime | None
    report_item_failures: bool
    bisect: bool
    max_retries: int  # -1: forever
    max_record_age: int  # -1: forever
    on_failure: str | None

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> "Mapping":
        return cls(
            uuid=doc["UUID"],
            function_arn=doc["FunctionArn"],
            source_arn=doc["EventSourceArn"],
            batch_size=int(doc.get("BatchSize") or 100),
            window_seconds=float(doc.get("MaximumBatchingWindowInSeconds") or 0),
            starting_position=doc.get("StartingPosition", "TRIM_HORIZON"),
            starting_timestamp=doc.get("StartingPositionTimestamp"),
            report_item_failures="ReportBatchItemFailures" in doc.get("FunctionResponseTypes", []),
            bisect=bool(doc.get("BisectBatchOnFunctionError")),
            max_retries=int(doc.get("MaximumRetryAttempts", -1)),
            max_record_age=int(doc.get("MaximumRecordAgeInSeconds", -1)),
            on_failure=doc.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
        )

    @property
    def source_name(self) -> str:
        """The stream's or the queue's name."""
        return self.source_arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]

    @property
    def is_queue(self) -> bool:
        return ":sqs:" in self.source_arn


class Checkpoints:
    """The last sequence number done, per mapping and shard, one small file each."""

    def __init__(self, folder: Path):
        self.folder = folder

    def get(self, mapping: str, shard: str) -> str | None:
        path = self.folder / mapping / shard
        return path.read_text().strip() if path.is_file() else None

    def put(self, mapping: str, shard: str, sequence_number: str) -> None:
        write_atomically(self.folder / mapping / shard, sequence_number)

    def latest(self, mapping: str, shard: str) -> datetime:
        """Where LATEST starts: fixed the first time it is asked, kept across restarts."""
        path = self.folder / mapping / f"{shard}.latest"
        if not path.is_file():
            write_atomically(path, datetime.now(UTC).isoformat())
        return datetime.fromisoformat(path.read_text())


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)  # a crash leaves the old or the new value


@dataclass
class Invocation:
    """What the runner did with one batch, kept for tests and status displays."""

    mapping: str
    shard: str
    sequence_numbers: list[str]
    outcome: str  # ok | partial | error | expired | exhausted
    finished_at: float = field(default_factory=time.time)


@dataclass
class Outcome:
    ok: bool
    failed_from: int | None = None  # index of the lowest failed record (partial response)
    failed_ids: tuple[str, ...] = ()  # the item identifiers reported as failed
    error: str = ""


@dataclass
class ShardWorker:
    """Reads one shard for one mapping and delivers its records, in order."""

    runner: "MappingRunner"
    mapping: Mapping
    shard: str
    buffer: deque = field(default_factory=deque)
    iterator: str | None = None

    def run(self) -> None:
        while not self.runner.stopping.is_set():
            current = self.runner.current.get(self.mapping.uuid)
            if current is None:  # the mapping was deleted
                return
            self.mapping = current  # UpdateEventSourceMapping applies from the next batch
            try:
                batch = self.next_batch()
                if batch:
                    self.deliver(batch)
                else:
                    self.runner.stopping.wait(self.runner.poll_seconds)
            except (ClientError, BotoCoreError) as error:  # the backend is restarting, say
                log.warning("mapping %s %s: %s", self.mapping.uuid, self.shard, error)
                self.iterator = None  # reopen from the checkpoint
                self.buffer.clear()
                self.runner.stopping.wait(1)

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
            if self.runner.stopping.wait(
                min(self.runner.poll_seconds, deadline - time.monotonic())
            ):
                return []

    def read(self) -> None:
        kinesis = self.runner.kinesis
        if self.iterator is None:
            self.iterator = kinesis.get_shard_iterator(
                StreamName=self.mapping.source_name, ShardId=self.shard, **self.start()
            )["ShardIterator"]
        answer = kinesis.get_records(ShardIterator=self.iterator, Limit=10_000)
        self.iterator = answer.get("NextShardIterator")
        self.buffer.extend(answer["Records"])

    def start(self) -> dict[str, Any]:
        done = self.runner.checkpoints.get(self.mapping.uuid, self.shard)
        if done:
            return {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": done}
        position = self.mapping.starting_position
        if position == "LATEST":
            latest = self.runner.checkpoints.latest(self.mapping.uuid, self.shard)
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
        while pending and not self.runner.stopping.is_set():
            records, attempts = pending.popleft()
            records = self.drop_expired(records)
            if not records:
                continue
            outcome = self.runner.invoke(self.mapping, self.shard, records)
            if outcome.ok:
                self.done(records, "ok")
                continue
            if outcome.failed_from is not None:  # partial batch response
                if outcome.failed_from:
                    self.done(records[: outcome.failed_from], "partial")
                records = records[outcome.failed_from :]
            elif self.mapping.bisect and len(records) > 1:
                self.runner.journal(self.mapping, self.shard, records, "error")
                middle = len(records) // 2
                pending.extendleft([(records[middle:], attempts), (records[:middle], attempts)])
                continue
            else:
                self.runner.journal(self.mapping, self.shard, records, "error")
            attempts += 1
            if 0 <= self.mapping.max_retries < attempts:
                self.runner.send_on_failure(
                    self.mapping,
                    self.shard,
                    records,
                    "RetryAttemptsExhausted",
                    attempts,
                    outcome.error,
                )
                self.done(records, "exhausted")
                continue
            self.runner.stopping.wait(min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** (attempts - 1)))
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
            self.runner.send_on_failure(self.mapping, self.shard, expired, "RecordAgeExceeded", 0)
            self.done(expired, "expired")
        return records[count:]

    def done(self, records: list[dict], outcome: str | None) -> None:
        if outcome:
            self.runner.journal(self.mapping, self.shard, records, outcome)
        self.runner.checkpoints.put(self.mapping.uuid, self.shard, records[-1]["SequenceNumber"])


@dataclass
class QueueWorker:
    """Polls an SQS queue for one mapping. What succeeded is deleted; failed messages become
    visible again after the queue's visibility timeout, and the queue's redrive policy moves
    those that keep failing to its dead-letter queue, as on AWS."""

    runner: "MappingRunner"
    mapping: Mapping

    def run(self) -> None:
        sqs = self.runner.sqs
        queue_url = None
        while not self.runner.stopping.is_set():
            current = self.runner.current.get(self.mapping.uuid)
            if current is None:
                return
            self.mapping = current
            try:
                queue_url = (
                    queue_url or sqs.get_queue_url(QueueName=self.mapping.source_name)["QueueUrl"]
                )
                messages = self.receive(queue_url)
                if messages:
                    self.deliver(queue_url, messages)
            except (ClientError, BotoCoreError) as error:
                log.warning("mapping %s: %s", self.mapping.uuid, error)
                self.runner.stopping.wait(1)

    def receive(self, queue_url: str) -> list[dict]:
        """Up to BatchSize messages (10 per call), waiting up to the batching window."""
        messages: list[dict] = []
        deadline = time.monotonic() + self.mapping.window_seconds
        while len(messages) < self.mapping.batch_size and not self.runner.stopping.is_set():
            answer = self.runner.sqs.receive_message(
                QueueUrl=queue_url,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
            )
            received = answer.get("Messages", [])
            messages += received
            if not received or time.monotonic() >= deadline:
                break
        return messages

    def deliver(self, queue_url: str, messages: list[dict]) -> None:
        outcome = self.runner.invoke(self.mapping, "", messages)
        if outcome.ok:
            done, result = messages, "ok"
        elif outcome.failed_ids:
            done = [m for m in messages if m["MessageId"] not in outcome.failed_ids]
            result = "partial"
        else:
            done, result = [], "error"
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + 10])
            ]
            self.runner.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        ids = [m["MessageId"] for m in messages]
        self.runner.invocations.append(Invocation(self.mapping.uuid, "queue", ids, result))


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
        self.poll_seconds, self.discover_seconds = poll_seconds, discover_seconds
        self.queue_pollers = queue_pollers
        self.stopping = threading.Event()
        self.invocations: deque[Invocation] = deque(maxlen=10_000)
        self._workers: dict[tuple[str, str], threading.Thread] = {}
        self.current: dict[str, Mapping] = {}  # the mappings' latest settings, by UUID
        self._thread: threading.Thread | None = None

    def start(self) -> "MappingRunner":
        self._thread = threading.Thread(target=self._discover, name="esm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for worker in [self._thread, *self._workers.values()]:
            if worker is not None:
                worker.join(timeout=30)

    def _discover(self) -> None:
        """New mappings and shards get a worker; a deleted mapping's worker is left to end."""
        while not self.stopping.is_set():
            try:
                mappings = self.mappings()
                self.current = {mapping.uuid: mapping for mapping in mappings}
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
                            worker = ShardWorker(self, mapping, shard["ShardId"])
                            thread = threading.Thread(
                                target=worker.run, daemon=True, name=f"esm-{shard['ShardId']}"
                            )
                            self._workers[key] = thread
                            thread.start()
            except (ClientError, BotoCoreError) as error:
                log.warning("cannot list event source mappings: %s", error)
            self.stopping.wait(self.discover_seconds)

    def _start_queue_pollers(self, mapping: Mapping) -> None:
        for number in range(self.queue_pollers):
            key = (mapping.uuid, f"poller-{number}")
            if key not in self._workers:
                worker = QueueWorker(self, mapping)
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

    def invoke(self, mapping: Mapping, shard: str, records: list[dict]) -> Outcome:
        if mapping.is_queue:
            event = {"Records": [queue_record(mapping, m) for m in records]}
            item_ids = [m["MessageId"] for m in records]
        else:
            event = {"Records": [lambda_record(mapping, shard, r) for r in records]}
            item_ids = [r["SequenceNumber"] for r in records]
        try:
            answer = self.lambda_.invoke(
                FunctionName=mapping.function_arn, Payload=json.dumps(event).encode()
            )
            payload = answer["Payload"].read()
        except (ClientError, BotoCoreError) as error:  # throttled, timed out, not found …
            return Outcome(ok=False, error=str(error))
        if answer.get("FunctionError"):
            return Outcome(ok=False, error=payload.decode(errors="replace")[:1000])
        if mapping.report_item_failures:
            return partial_outcome(payload, item_ids)
        return Outcome(ok=True)

    def send_on_failure(self, mapping, shard, records, condition, attempts, error="") -> None:
        """AWS's on-failure record: where the records are, not the records themselves."""
        if not mapping.on_failure:
            log.error(
                "mapping %s %s: %d records discarded (%s) and no on-failure destination",
                mapping.uuid,
                shard,
                len(records),
                condition,
            )
            return
        arrival = [r["ApproximateArrivalTimestamp"] for r in records]
        document = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": mapping.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled" if error else "",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "KinesisBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": min(arrival).isoformat(),
                "approximateArrivalOfLastRecord": max(arrival).isoformat(),
                "batchSize": len(records),
                "streamArn": mapping.source_arn,
            },
        }
        queue = self.sqs.get_queue_url(QueueName=mapping.on_failure.rsplit(":", 1)[-1])
        self.sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody=json.dumps(document))

    def journal(self, mapping: Mapping, shard: str, records: list[dict], outcome: str) -> None:
        sequence_numbers = [r["SequenceNumber"] for r in records]
        self.invocations.append(Invocation(mapping.uuid, shard, sequence_numbers, outcome))


def lambda_record(mapping: Mapping, shard: str, record: dict) -> dict[str, Any]:
    """One record of the Kinesis event as Lambda receives it."""
    region = mapping.source_arn.split(":")[3]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode(),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": mapping.function_arn,
        "awsRegion": region,
        "eventSourceARN": mapping.source_arn,
    }


def queue_record(mapping: Mapping, message: dict) -> dict[str, Any]:
    """One record of the SQS event as Lambda receives it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": mapping.source_arn,
        "awsRegion": mapping.source_arn.split(":")[3],
    }


def partial_outcome(payload: bytes, item_ids: list[str]) -> Outcome:
    """A ReportBatchItemFailures answer; anything malformed fails the whole batch (AWS)."""
    try:
        answer = json.loads(payload or b"null")
    except json.JSONDecodeError:
        return Outcome(ok=True)  # no JSON object: no failures reported
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if not failures:
        return Outcome(ok=True)
    try:
        failed = [item_ids.index(item["itemIdentifier"]) for item in failures]
    except (TypeError, KeyError, ValueError):
        return Outcome(ok=False, error=f"malformed batchItemFailures: {failures!r}"[:1000])
    return Outcome(
        ok=False,
        failed_from=min(failed),
        error="batch item failures",
        failed_ids=tuple(item_ids[i] for i in failed),
    )


def main() -> None:
    """`python -m emulation.esm`: the runner alone (Docker Compose runs it so), until SIGTERM.
    Checkpoints go to POSTWERK_ESM_CHECKPOINT_DIR."""
    checkpoints = Path(os.environ.get("POSTWERK_ESM_CHECKPOINT_DIR", ".postwerk/esm-checkpoints"))
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before the threads start
    runner = MappingRunner(checkpoints).start()
    signal.sigwait(stop_signals)
    runner.stop()


if __name__ == "__main__":
    main()
