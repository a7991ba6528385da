"""classify: a Kinesis batch of `email.v1` -> `classification.v1` results.

Decode each record, classify the batch with one InvokeEndpoint call (chunked under the 6 MB
payload limit), and hand the results off: stored once per e-mail (services/results.py), and
those this call stored routed (services/routing.py). Each is stored marked unrouted, and the
mark is cleared once EventBridge took its event; a refused event (or a crash before it went
out) leaves the mark, its record fails, and the retry finds the result stored and marked and
routes it. So no event is lost, and one repeats only when a mark could not be cleared and
the record comes again.

A throttled InvokeEndpoint (ThrottlingException: a serverless endpoint at its
MaxConcurrency, or AWS's own limits) is retried with backoff, botocore's retries and then
THROTTLE_BACKOFF_S here; still throttled, that chunk's records fail, and only those.
Records that could not be classified (endpoint error, throttling, a malformed record) are
returned as batchItemFailures, so the event source mapping retries only those and sends what
keeps failing to the dead-letter queue. When every record fails, the function raises
(Powertools' default) and the mapping retries, or bisects, the whole batch.
"""

import json
import random
import time
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from botocore.exceptions import ClientError
from pydantic import ValidationError

from services import clients, results, routing
from services.batch import respond
from services.records import ClassificationV1, EmailV1, InvocationAnswer, chunked
from services.settings import FunctionSettings

MAX_REQUEST_BYTES = 5 * 1024 * 1024  # InvokeEndpoint takes 6 MB; leave room for the envelope
# The pauses before classify's own retries of a throttled call (each with jitter, half to
# one and a half of it), after botocore's: short, as the function's time runs meanwhile.
THROTTLE_BACKOFF_S = (0.5, 1.0, 2.0)

logger = Logger(service="classify")
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)


class NotClassified(Exception):
    """The endpoint gave no answer for this record; the reason is the message."""


@dataclass
class Item:
    """One Kinesis record on its way to a stored result."""

    sequence_number: str
    email: EmailV1 | None = None
    result: ClassificationV1 | None = None
    error: Exception | None = None


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    settings = FunctionSettings()
    items = [decode(record) for record in event["Records"]]
    invoke(settings.endpoint_name, settings.review_threshold, items)
    store(settings, [item for item in items if item.result is not None])
    for item in items:
        if item.error is None:
            logger.info("classified", message_id=item.email.message_id,
                        label=item.result.label, needs_review=item.result.needs_review)  # fmt: skip
    return respond(event, items, processor, context)


def decode(record: dict) -> Item:
    sequence_number = record["kinesis"]["sequenceNumber"]
    try:
        data = KinesisStreamRecord(record).kinesis.data_as_bytes()
        return Item(sequence_number, email=EmailV1.model_validate_json(data))
    except (ValidationError, ValueError):
        logger.warning("not an email.v1 record", sequence=sequence_number)
        return Item(sequence_number, error=NotClassified("not an email.v1 record"))


def invoke(endpoint: str, fallback_threshold: float, items: list[Item]) -> None:
    """One InvokeEndpoint per chunk under the payload limit; each item gets its result, or
    the chunk's error. A result needs review below its label's threshold from the endpoint,
    or below `fallback_threshold` for a model without calibration.json."""
    runtime = clients.client("sagemaker-runtime")
    waiting = [item for item in items if item.error is None]
    for chunk in chunked(
        waiting, lambda item: len(json.dumps(item.email.model_text())), MAX_REQUEST_BYTES
    ):
        body = json.dumps({"instances": [item.email.model_text() for item in chunk]})
        try:
            answer = invoke_with_backoff(runtime, endpoint, body)
            document = InvocationAnswer.model_validate_json(answer["Body"].read())
        except (ClientError, ValidationError) as error:
            reason = (
                error.response["Error"].get("Code") if isinstance(error, ClientError) else error
            )
            failure = NotClassified(f"InvokeEndpoint: {reason}")
            logger.warning("endpoint failed", error=str(failure), emails=len(chunk))
            for item in chunk:
                item.error = failure
            continue
        predictions = {str(prediction.id): prediction for prediction in document.predictions}
        for item in chunk:
            prediction = predictions.get(item.email.message_id)
            if prediction is None:
                item.error = NotClassified("the endpoint's answer lacks this e-mail")
            else:
                item.result = ClassificationV1.from_prediction(
                    item.email, prediction, document.model, fallback_threshold
                )


def invoke_with_backoff(runtime, endpoint: str, body: str) -> dict:
    """InvokeEndpoint, retried while it is throttled (THROTTLE_BACKOFF_S); its last
    ClientError otherwise."""
    for wait in (*THROTTLE_BACKOFF_S, None):
        try:
            return runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType="application/json"
            )
        except ClientError as error:
            if wait is None or error.response["Error"].get("Code") != "ThrottlingException":
                raise
            logger.info("endpoint throttled; retrying", after_s=wait)
            pause(wait * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def pause(seconds: float) -> None:
    time.sleep(seconds)


def store(settings: FunctionSettings, items: list[Item]) -> None:
    """Hand the batch's results off: store them, and route those this call stored (and
    those a failed call stored and could not route), so a retried batch repeats no event.
    Each item keeps its write's error, or its routing's."""
    stored = results.store(
        settings.results_table,
        settings.results_bucket,
        [item.result for item in items],
        mark_unrouted=bool(settings.event_bus),
    )
    failed = stored.failed
    if settings.event_bus:
        to_route = stored.new + stored.unrouted
        refused = routing.route_stored(
            settings.event_bus, settings.routing, settings.results_table, to_route
        )
        failure = NotClassified("stored; EventBridge did not take its event (retried)")
        failed |= dict.fromkeys(refused, failure)
    for item in items:
        item.error = failed.get(item.result.message_id)
