"""What a worker gets from the runner, and nothing more: the mapping's latest settings, the
synchronous invoke, the on-failure destination, the journal, and when to stop."""

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from emulation.esm.events import lambda_record, on_failure_record, queue_record
from emulation.esm.mapping import Invocation, Mapping, Outcome, partial_outcome

log = logging.getLogger("postwerk.esm")


@dataclass
class Delivery:
    lambda_: Any  # boto3 Lambda client, no retries of its own (the workers retry)
    sqs: Any  # for the on-failure destinations
    poll_seconds: float
    stopping: threading.Event = field(default_factory=threading.Event)
    mappings: dict[str, Mapping] = field(default_factory=dict)  # latest settings, by UUID
    invocations: deque[Invocation] = field(default_factory=lambda: deque(maxlen=10_000))

    def current(self, mapping: str) -> Mapping | None:
        """The mapping's settings now (an update applies from the next batch); None once
        it was deleted."""
        return self.mappings.get(mapping)

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
        if not mapping.on_failure:
            log.error(
                "mapping %s %s: %d records discarded (%s) and no on-failure destination",
                mapping.uuid,
                shard,
                len(records),
                condition,
            )
            return
        document = on_failure_record(mapping, shard, records, condition, attempts, error)
        queue = self.sqs.get_queue_url(QueueName=mapping.on_failure.rsplit(":", 1)[-1])
        self.sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody=json.dumps(document))

    def journal(self, mapping: Mapping, shard: str, item_ids: list[str], outcome: str) -> None:
        self.invocations.append(Invocation(mapping.uuid, shard, item_ids, outcome))
