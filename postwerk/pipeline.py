"""What the operator does with a deployed pipeline: send e-mails, read results, count.

Plain boto3 against the stack's outputs, so it works on the local stack and on AWS alike.
"""

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

from postwerk.errors import CommandError
from services import clients, storage


@dataclass(frozen=True)
class Sent:
    path: Path
    key: str
    message_id: str


@dataclass(frozen=True)
class Counts:
    received: int  # e-mails in the raw bucket's incoming/ prefix
    classified: int  # results in the table
    rejected: int  # not e-mails, with a reason under rejected/
    dead_lettered: int  # records that kept failing (ingest and classify dead-letter queues)

    @property
    def in_flight(self) -> int:
        return max(0, self.received - self.classified - self.rejected - self.dead_lettered)


def email_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the .eml files under folders (sorted)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.eml"))
            if not found:
                raise CommandError(f"{path}: no .eml files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path}: no such file or folder")
    return files


def send(files: list[Path], raw_bucket: str) -> list[Sent]:
    """Upload each file to incoming/, keyed by its content: the same e-mail twice is one
    object (and the pipeline gives it one result whatever the key)."""
    sent = []
    for path in files:
        raw = path.read_bytes()
        key = f"incoming/{hashlib.sha256(raw).hexdigest()[:16]}-{path.name}"
        storage.write(raw_bucket, key, raw, ContentType="message/rfc822")
        sent.append(Sent(path, key, message_id(raw)))
    return sent


def message_id(raw: bytes) -> str:
    """The id ingest gives this e-mail (docs/architecture.md 3.2), by the same parser."""
    email = parsed(raw)
    return email.message_id if email else f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}"


def headers(raw: bytes) -> dict[str, str]:
    """Sender address and subject as ingest reads them, for showing an e-mail next to its
    result (empty for bytes that are not an e-mail)."""
    email = parsed(raw)
    return (
        {"from": email.sender, "subject": email.subject} if email else {"from": "", "subject": ""}
    )


@functools.lru_cache(maxsize=64)
def parsed(raw: bytes):
    """The e-mail as the ingest function parses it, or None for what it would reject."""
    from services.mail import NotAnEmail, parse_email  # on use: py3langid loads numpy

    try:
        return parse_email(raw, "local", "local")
    except NotAnEmail:
        return None


def results(table_name: str) -> list[dict]:
    """Every classification.v1 result as JSON values, oldest first."""
    from services import results as results_table  # on use: it brings the functions' logger

    stored = [
        item.model_dump(mode="json", by_alias=True) for item in results_table.scan(table_name)
    ]
    return sorted(stored, key=lambda item: (item["classified_at"], item["message_id"]))


def rejections(raw_bucket: str, keys: set[str]) -> dict[str, str]:
    """Why ingest rejected those of `keys` it did (rejected/<key>.reason.json): one listing
    of the prefix, then one read per rejected e-mail."""
    explained = set(storage.list_keys(raw_bucket, "rejected/"))
    found = {}
    for key in keys:
        if f"rejected/{key}.reason.json" in explained:
            reason = storage.read_json(raw_bucket, f"rejected/{key}.reason.json")
            found[key] = reason.get("reason", "no reason given")
    return found


def unprocessed(outputs: dict[str, str]) -> list[dict]:
    """The incoming/ objects (listing entries) that have neither a result nor a rejection:
    those whose S3 notification was lost (a crash of the local AWS: docs/pipeline.md) or
    still waits in the queue. An object whose e-mail has its result under another object's
    key (the same message received twice) counts as done."""
    raw = outputs["RawBucket"]
    stored = results(outputs["ResultsTable"])
    done = {item["input"]["source"]["key"] for item in stored if item.get("input")}
    explained = set(storage.list_keys(raw, "rejected/"))
    left = [
        entry
        for entry in storage.objects(raw, "incoming/")
        if entry["Key"] not in done and f"rejected/{entry['Key']}.reason.json" not in explained
    ]
    if not left:
        return []
    ids = {item["message_id"] for item in stored}
    return [entry for entry in left if message_id(storage.read(raw, entry["Key"])) not in ids]


def s3_notification(bucket: str, objects: list[dict], event_time: datetime, region: str) -> dict:
    """The S3 ObjectCreated notification of these objects (listing entries: Key, Size), as
    S3 sends it to the incoming queue (keys URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(entry["Key"], safe="/"), "size": entry["Size"]},
                },
            }
            for entry in objects
        ]
    }


def redrive(outputs: dict[str, str]) -> list[str]:
    """Each unprocessed incoming/ object's notification sent to the incoming queue again, one
    message per object as S3 sends them; their keys. Ingest and the results' conditional put
    make a second notification of an object harmless: still one result, one line, one
    routing event."""
    left = unprocessed(outputs)
    sqs, now, region = clients.client("sqs"), datetime.now(UTC), clients.region()
    for start in range(0, len(left), 10):  # SendMessageBatch's limit
        batch = left[start : start + 10]
        notifications = [s3_notification(outputs["RawBucket"], [entry], now, region)
                         for entry in batch]  # fmt: skip
        entries = [{"Id": str(n), "MessageBody": json.dumps(notification)}
                   for n, notification in enumerate(notifications)]  # fmt: skip
        answer = sqs.send_message_batch(QueueUrl=outputs["IncomingQueueUrl"], Entries=entries)
        if answer.get("Failed"):
            failed = [batch[int(f["Id"])]["Key"] for f in answer["Failed"]]
            raise CommandError(f"the incoming queue refused notifications of {failed}")
    return [entry["Key"] for entry in left]


def counts(outputs: dict[str, str]) -> Counts:
    sqs = clients.client("sqs")
    pages = (
        clients.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=outputs["ResultsTable"], Select="COUNT")
    )
    dead = 0
    for queue in ("DeadLetterQueueUrl", "IngestDeadLetterQueueUrl"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs[queue], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        dead += int(attributes["ApproximateNumberOfMessages"])
    return Counts(
        received=count_objects(outputs["RawBucket"], "incoming/"),
        classified=sum(page["Count"] for page in pages),
        rejected=count_objects(outputs["RawBucket"], "rejected/", suffix=".reason.json"),
        dead_lettered=dead,
    )


def count_objects(bucket: str, prefix: str, suffix: str = "") -> int:
    return sum(1 for key in storage.list_keys(bucket, prefix) if key.endswith(suffix))


def review_url(outputs: dict[str, str]) -> str:
    """The review page. Emulators serve an HTTP API under their own address, path-style
    (`/_aws/execute-api/<id>/$default/`, LocalStack and MiniStack alike), which every
    browser and curl reach; on AWS it is the API's own endpoint."""
    emulator = os.environ.get("AWS_ENDPOINT_URL")
    if emulator:
        return f"{emulator.rstrip('/')}/_aws/execute-api/{outputs['ReviewApiId']}/$default/"
    return f"{outputs['ReviewUrl'].rstrip('/')}/"


def redact(address: str) -> str:
    """a****@example.com: enough to tell senders apart on screen, not to read them."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}****{at}{domain}" if at else "****"
