"""A mapping's settings as the Lambda API lists them, and what became of one invocation."""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
