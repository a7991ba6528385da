"""classify: a Kinesis batch of `email.v1` -> `classification.v1` results.

One InvokeEndpoint call per batch (chunked under the 6 MB payload limit). Each result goes
to DynamoDB with a conditional put keyed by message id, so a re-delivered e-mail never gives
a second result (that conditional put is the idempotency: no extra table, unlike Powertools'
idempotency utility). New results also go to the results bucket, one JSON Lines object per
batch under `results/date=YYYY-MM-DD/`, written before DynamoDB so that nothing is lost; a
line can repeat only when a DynamoDB write failed and its record was retried.

Only results this call stored are routed (services/routing.py). Each is stored marked
`unrouted`, and the mark is cleared once EventBridge took its event; a refused event (or a
crash before it went out) leaves the mark, its record fails, and the retry finds the result
stored and marked and routes it. So no event is lost, and one repeats only when a mark
could not be cleared and the record comes again.

Records that could not be classified (endpoint error, throttling, a malformed record) are
returned as batchItemFailures, so the event source mapping retries only those and sends what
keeps failing to the dead-letter queue. When every record fails, the function raises
(Powertools' default) and the mapping retries, or bisects, the whole batch.
"""

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from services import clients, routing
from services import results as results_table
from services.batch import respond
from services.records import (
    ClassificationV1,
    EmailV1,
    InputSummary,
    InvocationAnswer,
    ModelIdentity,
    Prediction,
    chunked,
)
from services.settings import FunctionSettings

MAX_REQUEST_BYTES = 5 * 1024 * 1024  # InvokeEndpoint takes 6 MB; leave room for the envelope
WRITERS = 16  # concurrent DynamoDB writes, where a transaction was cancelled
MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit (and 4 MB: a result is ~1 KB)
ABSENT = "attribute_not_exists(message_id)"  # one result per e-mail
EXISTED = "existed"  # put_once: another call stored this e-mail's result meanwhile
SERIALIZER = TypeSerializer()
UNROUTED = "unrouted"  # on a stored result until EventBridge took its event (route)

Outcome = TypeVar("Outcome")

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
    classify(settings.endpoint_name, settings.review_threshold, items)
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


def classify(endpoint: str, threshold: float, items: list[Item]) -> None:
    """One InvokeEndpoint per chunk under the payload limit; each item gets its result, or
    the chunk's error."""
    runtime = clients.client("sagemaker-runtime")
    waiting = [item for item in items if item.error is None]
    for chunk in chunked(
        waiting, lambda item: len(json.dumps(item.email.model_text())), MAX_REQUEST_BYTES
    ):
        body = json.dumps({"instances": [item.email.model_text() for item in chunk]})
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType="application/json"
            )
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
                item.result = to_result(item.email, prediction, document.model, threshold)


def store(settings: FunctionSettings, items: list[Item]) -> None:
    """Store the batch's results and route those this call stored, so a retried batch
    repeats no event. Each item keeps its write's error, or its routing's."""
    stored, failed, unrouted = store_results(
        settings.results_table,
        settings.results_bucket,
        [item.result for item in items],
        to_route=bool(settings.event_bus),
    )
    if settings.event_bus:
        failed |= route(settings, stored + unrouted)
    for item in items:
        item.error = failed.get(item.result.message_id)


def route(settings: FunctionSettings, results: list[ClassificationV1]) -> dict[str, Exception]:
    """Publish the results (each stored marked UNROUTED) and clear the mark of those
    EventBridge accepted. A refused one keeps its mark and fails its record, so the
    mapping's retry routes it, and only it, again; returns those errors."""
    refused = set(routing.publish(settings.event_bus, settings.routing, results))
    routed = [result.message_id for result in results if result.message_id not in refused]
    dynamodb, table = clients.client("dynamodb"), settings.results_table
    clears = [{"Update": mark_removal(table, message_id)} for message_id in routed]
    cleared = in_transactions(dynamodb, clears, partial(clear_mark, dynamodb))
    if not all(cleared.values()):  # the events went out; only a re-delivery would repeat them
        logger.warning("routed, mark not cleared", emails=len(routed))
    failure = NotClassified("stored; EventBridge did not take its event (retried)")
    return dict.fromkeys(refused, failure)


def clear_mark(dynamodb, action: dict) -> bool:
    try:
        dynamodb.update_item(**action["Update"])
    except (ClientError, BotoCoreError):
        return False
    return True


def mark_removal(table_name: str, message_id: str) -> dict:
    return {"TableName": table_name, "Key": {"message_id": {"S": message_id}},
            "UpdateExpression": f"REMOVE {UNROUTED}"}  # fmt: skip


def store_results(
    table: str,
    bucket: str,
    results: list[ClassificationV1],
    key_prefix: str = "",
    to_route: bool = False,
) -> tuple[list[ClassificationV1], dict[str, Exception], list[ClassificationV1]]:
    """New results to the bucket first (a failure there raises, so the whole batch is
    retried and nothing is lost), then to DynamoDB, once per message id; `to_route`: each
    marked UNROUTED until `route` clears it. Returns the results this call stored, the write
    errors by message id, and the stored results still marked (as stored)."""
    dynamodb = clients.client("dynamodb")  # a client: thread-safe, where resources are not
    first = {}  # one write per message id: a batch may hold the same e-mail twice
    for result in results:
        first.setdefault(result.message_id, result)
    done_before = already_stored(dynamodb, table, list(first))
    new = [result for message_id, result in first.items() if message_id not in done_before]
    write_lines(bucket, new, key_prefix)
    puts = [{"Put": {"TableName": table, "Item": dynamodb_item(result, to_route),
                     "ConditionExpression": ABSENT}} for result in new]  # fmt: skip
    written = in_transactions(dynamodb, puts, partial(put_once, dynamodb))
    outcomes = {new[i].message_id: outcome for i, outcome in written.items()}
    failed = {m: error for m, error in outcomes.items() if isinstance(error, Exception)}
    unrouted = [results_table.get(table, m) for m, flag in done_before.items() if flag]
    return [r for r in new if outcomes.get(r.message_id) is None], failed, unrouted


def to_result(
    email: EmailV1, prediction: Prediction, model: ModelIdentity, threshold: float
) -> ClassificationV1:
    return ClassificationV1(
        message_id=email.message_id,
        label=prediction.label,
        score=prediction.score,
        top_k=prediction.top_k,
        needs_review=prediction.score < threshold,
        model=model,
        classified_at=datetime.now(UTC),
        input=InputSummary(
            subject=email.subject,
            language=email.language,
            length=len(email.body_text),
            source=email.source,
        ),
    )


def already_stored(dynamodb, table_name: str, message_ids: list[str]) -> dict[str, bool]:
    """The message ids that have a result already (a retried or re-delivered batch), and
    whether that result still waits to be routed."""
    found: dict[str, bool] = {}
    for start in range(0, len(message_ids), 100):  # BatchGetItem's limit
        keys = [{"message_id": {"S": m}} for m in message_ids[start : start + 100]]
        request = {table_name: {"Keys": keys, "ProjectionExpression": f"message_id, {UNROUTED}"}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(table_name, []):
                found[item["message_id"]["S"]] = item.get(UNROUTED, {}).get("BOOL", False)
            request = answer.get("UnprocessedKeys") or None
    return found


def in_transactions(
    dynamodb, actions: list[dict], one_by_one: Callable[[dict], Outcome]
) -> dict[int, Outcome]:
    """The actions in TransactWriteItems of up to 100 (a tenth of the requests' cost to the
    backend, and to this function, of one call per item; on AWS twice the write capacity).
    The actions of a cancelled transaction, none of whose writes happened (a condition
    failed, a conflict, throttling), go through `one_by_one`, WRITERS at a time; returns
    their outcomes by position."""
    left = []
    for start in range(0, len(actions), MAX_TRANSACTION_ITEMS):
        chunk = actions[start : start + MAX_TRANSACTION_ITEMS]
        try:
            dynamodb.transact_write_items(TransactItems=chunk)
        except ClientError as error:
            logger.info("transaction cancelled: item by item", code=error.response["Error"]["Code"])
            left += range(start, start + len(chunk))
    with ThreadPoolExecutor(WRITERS) as pool:  # DynamoDB round trips overlap
        return dict(zip(left, pool.map(one_by_one, [actions[i] for i in left]), strict=True))


def dynamodb_item(result: ClassificationV1, unrouted: bool) -> dict:
    document = json.loads(result.model_dump_json(by_alias=True), parse_float=Decimal)
    item = {key: SERIALIZER.serialize(value) for key, value in document.items()}
    return item | ({UNROUTED: {"BOOL": True}} if unrouted else {})


def put_once(dynamodb, action: dict) -> Exception | str | None:
    """The action's conditional put on its own: None when this call stored the result,
    EXISTED when it was stored meanwhile, or the error."""
    try:
        dynamodb.put_item(**action["Put"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            return error
        return EXISTED
    return None


def write_lines(bucket: str, results: list[ClassificationV1], key_prefix: str = "") -> None:
    """One JSON Lines object for the new results, partitioned by date."""
    if not results:
        return
    now = datetime.now(UTC)
    key = f"results/date={now:%Y-%m-%d}/{key_prefix}{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
    body = "".join(result.model_dump_json(by_alias=True) + "\n" for result in results)
    clients.client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode())
