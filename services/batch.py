"""Partial batch responses for a handler that works on a whole batch at once (one
InvokeEndpoint, one PutRecords per batch) rather than record by record.

The handler keeps one item per record, in the event's order, with what went wrong for it;
`respond` hands Powertools' BatchProcessor the same outcomes record by record, so only the
failed ones are reported (and retried), and a batch where every record failed raises.
"""

from collections.abc import Sequence
from typing import Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, process_partial_response


class Outcome(Protocol):
    error: Exception | None  # None: this record is done


def respond(event: dict, items: Sequence[Outcome], processor: BatchProcessor, context) -> dict:
    """{"batchItemFailures": [...]} for the items that have an error."""
    if len(items) != len(event["Records"]):
        raise ValueError(f"{len(items)} outcomes for {len(event['Records'])} records")
    outcomes = iter(items)

    def check(record) -> None:  # Powertools calls it once per record, in order
        if (error := next(outcomes).error) is not None:
            raise error

    return process_partial_response(event, check, processor, context)
