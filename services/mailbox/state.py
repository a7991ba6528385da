"""The mailbox door's state: JSON objects under the artifacts bucket's mailboxes/ prefix, so
the scheduled function on AWS, the local door and `postwerk mailbox` share it with nothing
but S3 (this module is the prefix's one writer):

mailboxes/<name>/mailbox.json     the configuration (config.Mailbox; no secret in it)
mailboxes/<name>/checkpoint.json  per folder: UIDVALIDITY and the last UID done
mailboxes/<name>/health.json      the last fetch: when, how many, what failed, the backlog

A checkpoint only moves forward: it is written with S3's conditional writes against the
version it was read from, so a second door running at the same time (an overlapping
scheduled run) can never move it back.
"""

import json
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from pydantic import BaseModel

from services import clients
from services.mailbox.config import Mailbox

PREFIX = "mailboxes/"


class Checkpoint(BaseModel):
    """A folder's position: every message up to last_uid is done (stored, or set aside)."""

    uidvalidity: int
    last_uid: int = 0


class Checkpoints(BaseModel):
    folders: dict[str, Checkpoint] = {}


class Health(BaseModel):
    """What the last fetch of a mailbox did; `postwerk mailbox status` and `postwerk status`
    show it, the scheduled function turns it into the metrics its alarms watch."""

    watched_since: datetime | None = None  # the first fetch
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str = ""  # the last failure's reason, cleared by a success
    last_error_at: datetime | None = None
    failures: int = 0  # in a row
    login_refused: bool = False
    retry_after: datetime | None = None  # backoff: no new try before
    stored: int = 0  # the last fetch: new messages stored
    duplicates: int = 0  # the last fetch: stored before (a second import is a no-op)
    set_aside: int = 0  # the last fetch: under the raw bucket's rejected/ with their reason
    backlog: int = 0  # left for the next fetch (bounded batches, the time ran out)

    def overdue(self, mailbox: Mailbox, now: datetime) -> bool:
        """No successful fetch for the mailbox's alarm time (counted from its first fetch
        when none ever succeeded)."""
        since = self.last_success_at or self.watched_since
        return since is not None and now - since > timedelta(minutes=mailbox.alarm_after_minutes)

    def waiting(self, now: datetime) -> bool:
        return self.retry_after is not None and now < self.retry_after


def key(name: str, what: str) -> str:
    return f"{PREFIX}{name}/{what}.json"


def save_mailbox(bucket: str, mailbox: Mailbox) -> None:
    body = mailbox.model_dump_json(indent=2).encode()
    clients.client("s3").put_object(Bucket=bucket, Key=key(mailbox.name, "mailbox"), Body=body)


def mailboxes(bucket: str) -> list[Mailbox]:
    """Every configured mailbox, by name (none while there is no bucket yet)."""
    s3 = clients.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
    try:
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    except s3.exceptions.NoSuchBucket:
        return []
    found = [read(bucket, k) for k in keys if k.endswith("/mailbox.json")]
    return sorted((Mailbox.model_validate(f[0]) for f in found if f), key=lambda m: m.name)


def remove_mailbox(bucket: str, name: str) -> bool:
    """The configuration, checkpoint and health of the mailbox; False when there was none."""
    s3 = clients.client("s3")
    existed = read(bucket, key(name, "mailbox")) is not None
    for what in ("mailbox", "checkpoint", "health"):
        s3.delete_object(Bucket=bucket, Key=key(name, what))
    return existed


def checkpoints(bucket: str, name: str) -> Checkpoints:
    found = read(bucket, key(name, "checkpoint"))
    return Checkpoints.model_validate(found[0]) if found else Checkpoints()


def advance(bucket: str, name: str, folder: str, position: Checkpoint) -> bool:
    """Move the folder's checkpoint to `position` unless it is already there or beyond (in
    the same UIDVALIDITY); False when another door moved it first."""
    found = read(bucket, key(name, "checkpoint"))
    current, etag = (Checkpoints.model_validate(found[0]), found[1]) if found else (None, None)
    stored = current.folders.get(folder) if current else None
    same_numbering = stored and stored.uidvalidity == position.uidvalidity
    if same_numbering and stored.last_uid >= position.last_uid:
        return False
    from services.replies import put_if  # on use: replies loads numpy, `postwerk` needs none

    updated = (current or Checkpoints()).folders | {folder: position}
    body = Checkpoints(folders=updated).model_dump_json().encode()
    return put_if(bucket, key(name, "checkpoint"), body, etag)


def health(bucket: str, name: str) -> Health:
    found = read(bucket, key(name, "health"))
    return Health.model_validate(found[0]) if found else Health()


def save_health(bucket: str, name: str, record: Health) -> None:
    body = record.model_dump_json(indent=2).encode()
    clients.client("s3").put_object(Bucket=bucket, Key=key(name, "health"), Body=body)


def read(bucket: str, object_key: str) -> tuple[dict, str] | None:
    """The object's JSON and its ETag; None when there is none."""
    try:
        answer = clients.client("s3").get_object(Bucket=bucket, Key=object_key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(answer["Body"].read()), answer["ETag"]


def now() -> datetime:
    return datetime.now(UTC)
