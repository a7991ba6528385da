"""ingest: S3 -> SQS -> this function -> an `email.v1` record on the Kinesis stream.

Each SQS message is an S3 event notification. Bytes that are not an e-mail are copied to
`rejected/<key>` with `<key>.reason.json` beside them, so nothing disappears unexplained;
parse_email raises nothing else, and its cost is bounded (services/mail.py), so a defective
or hostile e-mail becomes a flagged record instead of a retried, dead-lettered message.
A message that fails (S3 or Kinesis unavailable) is reported as a batch item failure: SQS
delivers it again, and after five tries moves it to the ingest dead-letter queue. Logs name
message ids, never addresses or bodies.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes import S3Event

from services import clients, storage
from services.batch import respond
from services.mail import NotAnEmail, parse_email
from services.records import EmailV1, chunked
from services.settings import FunctionSettings

MAX_RECORDS_PER_CALL = 500  # PutRecords' limits
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
PUT_ATTEMPTS = 5
READERS = 10  # concurrent S3 reads: a batch's e-mails are fetched side by side (SQS sends 10)

logger = Logger(service="ingest")
processor = BatchProcessor(event_type=EventType.SQS)
readers = ThreadPoolExecutor(READERS)  # made once per container, as the clients are


@dataclass
class Item:
    """One SQS message: the e-mails of its S3 notification, or what went wrong."""

    emails: list[EmailV1] = field(default_factory=list)
    error: Exception | None = None


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    settings = FunctionSettings()
    items = list(readers.map(read, event["Records"]))  # the S3 round trips overlap
    try:  # one PutRecords for the whole batch
        sent = [email for item in items if item.error is None for email in item.emails]
        put_records(clients.client("kinesis"), settings.emails_stream, sent)
    except Exception as error:  # every message with an e-mail is retried by SQS
        for item in items:
            if item.error is None and item.emails:
                item.error = error
    return respond(event, items, processor, context)


def read(record: dict) -> Item:
    try:
        return Item(read_notification(json.loads(record["body"])))
    except Exception as error:  # this message is retried by SQS; the others go on
        return Item(error=error)


def read_notification(notification: dict) -> list[EmailV1]:
    """The e-mails of one S3 event notification; non-e-mails are rejected on the way."""
    if notification.get("Event") == "s3:TestEvent":  # sent once when S3 is configured
        return []
    emails = []
    for item in S3Event(notification).records:
        bucket = item.s3.bucket.name
        key = unquote_plus(item.s3.get_object.key)  # notifications URL-encode keys
        raw = storage.read(bucket, key)
        try:
            email = parse_email(raw, bucket, key)
        except NotAnEmail as error:
            reject(bucket, key, raw, str(error))
            continue
        logger.info(
            "parsed",
            message_id=email.message_id,
            language=email.language,
            attachments=len(email.attachments),
            truncated=email.body_truncated,
            flags=email.flags,
        )
        emails.append(email)
    return emails


def reject(bucket: str, key: str, raw: bytes, reason: str) -> None:
    logger.warning("rejected", key=key, reason=reason)
    storage.write(bucket, f"rejected/{key}", raw)
    explanation = {"reason": reason, "key": key, "rejected_at": datetime.now(UTC).isoformat()}
    storage.write(bucket, f"rejected/{key}.reason.json", json.dumps(explanation).encode())


def put_records(kinesis, stream: str, emails: list[EmailV1]) -> None:
    """PutRecords in chunks; entries the stream refused (throttling) are sent again."""
    entries = [
        {"Data": e.model_dump_json(by_alias=True).encode(), "PartitionKey": e.message_id}
        for e in emails
    ]

    def size(entry: dict) -> int:
        return len(entry["Data"]) + len(entry["PartitionKey"])

    for chunk in chunked(entries, size, MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL):
        for attempt in range(PUT_ATTEMPTS):
            answer = kinesis.put_records(StreamName=stream, Records=chunk)
            if not answer.get("FailedRecordCount"):
                break
            chunk = [e for e, r in zip(chunk, answer["Records"], strict=True) if "ErrorCode" in r]
            time.sleep(0.1 * 2**attempt)
        else:
            raise RuntimeError(f"Kinesis refused {len(chunk)} records {PUT_ATTEMPTS} times")
