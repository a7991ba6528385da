"""One poller of an SQS mapping: receive a batch, deliver it, delete what succeeded."""

import logging
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from emulation.esm.delivery import Delivery
from emulation.esm.mapping import Mapping

log = logging.getLogger("postwerk.esm")

GATHER_POLL_SECONDS = 0.1  # between short polls while a batching window gathers messages


@dataclass
class QueueWorker:
    """Polls an SQS queue for one mapping. What succeeded is deleted; failed messages become
    visible again after the queue's visibility timeout, and the queue's redrive policy moves
    those that keep failing to its dead-letter queue, as on AWS."""

    delivery: Delivery
    sqs: Any  # boto3 SQS client
    mapping: Mapping

    def run(self) -> None:
        queue_url = None
        while not self.delivery.stopping.is_set():
            current = self.delivery.current(self.mapping.uuid)
            if current is None:
                return
            self.mapping = current
            try:
                queue_url = (
                    queue_url
                    or self.sqs.get_queue_url(QueueName=self.mapping.source_name)["QueueUrl"]
                )
                messages = self.receive(queue_url)
                if messages:
                    self.deliver(queue_url, messages)
            except (ClientError, BotoCoreError) as error:
                log.warning("mapping %s: %s", self.mapping.uuid, error)
                self.delivery.stopping.wait(1)

    def receive(self, queue_url: str) -> list[dict]:
        """Up to BatchSize messages (10 per call). The batching window starts with the first
        message: until then one long poll (a second), after it short polls, a tenth of a
        second apart while the queue is empty, until the batch is full or the window over."""
        messages: list[dict] = []
        deadline = None
        while len(messages) < self.mapping.batch_size and not self.delivery.stopping.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            answer = self.sqs.receive_message(
                QueueUrl=queue_url,
                WaitTimeSeconds=1 if remaining is None else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
            )
            received = answer.get("Messages", [])
            messages += received
            if deadline is None:
                if not received:
                    break  # nothing for a second: back to the loop, which rereads the mapping
                deadline = time.monotonic() + self.mapping.window_seconds
            elif not received:
                self.delivery.stopping.wait(min(GATHER_POLL_SECONDS, remaining))
        return messages

    def deliver(self, queue_url: str, messages: list[dict]) -> None:
        outcome = self.delivery.invoke(self.mapping, "", messages)
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
            self.sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        self.delivery.journal(self.mapping, "queue", [m["MessageId"] for m in messages], result)
