"""classify: a Kinesis batch of `email.v1` -> `classification.v1` results.

One InvokeEndpoint call per batch (chunked under the 6 MB payload limit). Each result goes
to DynamoDB with a conditional put keyed by message id, so a re-delivered e-mail never gives
a second result (that conditional put is the idempotency: no extra table, unlike Powertools'
idempotency utility). New results also go to the results bucket, one JSON Lines object per
batch under `results/date=YYYY-MM-DD/`, written before DynamoDB so that nothing is lost; a
line can repeat only when a DynamoDB write failed and its record was retried.

Records that could not be classified (endpoint error, throttling, a malformed record) are
returned as batchItemFailures, so the event source mapping retries only those and sends what
keeps failing to the dead-letter queue. When every record fails, the function raises
(Powertools' default) and the mapping retries, or bisects, the whole batch.
"""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from pydantic import ValidationError

from services.records import ClassificationV1, EmailV1, InputSummary, chunked
from services.settings import FunctionSettings

MAX_REQUEST_BYTES = 5 * 1024 * 1024  # InvokeEndpoint takes 6 MB; leave room for the envelope
WRITERS = 16  # concurrent DynamoDB puts: a batch's writes overlap instead of queueing
SERIALIZER = TypeSerializer()

logger = Logger(service="classify")
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)


class NotClassified(Exception):
    """The endpoint gave no answer for this record; the reason is the message."""


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    settings = FunctionSettings()
    emails = decode(event["Records"])
    predictions = classify(settings.endpoint_name, list(emails.values()))
    results = {
        email.message_id: to_result(email, prediction, settings.review_threshold)
        for email in emails.values()
        if isinstance(prediction := predictions.get(email.message_id), dict)
    }
    dynamodb = boto3.client("dynamodb")  # a client: thread-safe, where resources are not
    done_before = already_stored(dynamodb, settings.results_table, list(results))
    new = [result for message_id, result in results.items() if message_id not in done_before]
    # The results bucket first: a failure here retries the whole batch and loses nothing.
    write_lines(settings.results_bucket, new)
    with ThreadPoolExecutor(WRITERS) as pool:  # DynamoDB round trips overlap
        writes = pool.map(partial(put_once, dynamodb, settings.results_table), new)
        failed = dict(zip((r.message_id for r in new), writes, strict=True))

    def store(record: KinesisStreamRecord) -> None:
        email = emails.get(record.kinesis.sequence_number)
        if email is None:
            raise NotClassified("not an email.v1 record")
        prediction = predictions.get(email.message_id)
        if isinstance(prediction, Exception):
            raise prediction
        result = results[email.message_id]
        if error := failed.get(email.message_id):
            raise error
        logger.info(
            "classified",
            message_id=email.message_id,
            label=result.label,
            needs_review=result.needs_review,
        )

    return process_partial_response(event, store, processor, context)


def decode(records: list[dict]) -> dict[str, EmailV1]:
    """email.v1 records by sequence number; malformed ones are left out (and fail later)."""
    emails = {}
    for record in records:
        try:
            data = KinesisStreamRecord(record).kinesis.data_as_bytes()
            emails[record["kinesis"]["sequenceNumber"]] = EmailV1.model_validate_json(data)
        except (ValidationError, ValueError):
            logger.warning("not an email.v1 record", sequence=record["kinesis"]["sequenceNumber"])
    return emails


def classify(endpoint: str, emails: list[EmailV1]) -> dict[str, dict | Exception]:
    """Predictions by message id; a failed chunk maps its e-mails to the error."""
    runtime = boto3.client("sagemaker-runtime")
    answers: dict[str, dict | Exception] = {}
    for chunk in chunked(
        emails, lambda email: len(json.dumps(email.model_text())), MAX_REQUEST_BYTES
    ):
        body = json.dumps({"instances": [email.model_text() for email in chunk]})
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType="application/json"
            )
            document = json.loads(answer["Body"].read())
        except ClientError as error:
            failure = NotClassified(f"InvokeEndpoint: {error.response['Error'].get('Code')}")
            logger.warning("endpoint failed", error=str(failure), emails=len(chunk))
            answers |= {email.message_id: failure for email in chunk}
            continue
        for prediction in document["predictions"]:
            answers[prediction["id"]] = prediction | {"model": document["model"]}
    return answers


def to_result(email: EmailV1, prediction: dict, threshold: float) -> ClassificationV1:
    return ClassificationV1(
        message_id=email.message_id,
        label=prediction["label"],
        score=prediction["score"],
        top_k=prediction["top_k"],
        needs_review=prediction["score"] < threshold,
        model=prediction["model"],
        classified_at=datetime.now(UTC),
        input=InputSummary(
            subject=email.subject,
            language=email.language,
            length=len(email.body_text),
            source=email.source,
        ),
    )


def already_stored(dynamodb, table_name: str, message_ids: list[str]) -> set[str]:
    """The message ids that have a result already (a retried or re-delivered batch)."""
    found: set[str] = set()
    for start in range(0, len(message_ids), 100):  # BatchGetItem's limit
        keys = [{"message_id": {"S": m}} for m in message_ids[start : start + 100]]
        request = {table_name: {"Keys": keys, "ProjectionExpression": "message_id"}}
        while request:
            answer = dynamodb.batch_get_item(RequestItems=request)
            items = answer["Responses"].get(table_name, [])
            found |= {item["message_id"]["S"] for item in items}
            request = answer.get("UnprocessedKeys") or None
    return found


def put_once(dynamodb, table_name: str, result: ClassificationV1) -> Exception | None:
    """Store the result unless this e-mail has one already; returns what went wrong."""
    document = json.loads(result.model_dump_json(by_alias=True), parse_float=Decimal)
    item = {key: SERIALIZER.serialize(value) for key, value in document.items()}
    try:
        dynamodb.put_item(
            TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(message_id)"
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            return error
    return None


def write_lines(bucket: str, results: list[ClassificationV1]) -> None:
    """One JSON Lines object for the batch's new results, partitioned by date."""
    if not results:
        return
    now = datetime.now(UTC)
    key = f"results/date={now:%Y-%m-%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.jsonl"
    body = "".join(result.model_dump_json(by_alias=True) + "\n" for result in results)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode())
