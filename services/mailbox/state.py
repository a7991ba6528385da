"""The mailbox door's state: JSON objects under the artifacts bucket's mailboxes/ prefix, so
the scheduled function on AWS, the local door and `postwerk mailbox` share it with nothing
but S3 (this module is the prefix's one writer):

mailboxes/<name>/mailbox.json     the configuration (config.Mailbox; no secret in it)
mailboxes/<name>/checkpoint.json  per folder: UIDVALIDITY and the last UID done (IMAP), or
                                  the delta link to read next (Microsoft Graph)
mailboxes/<name>/health.json      the last fetch: when, how many, what failed, the backlog

A checkpoint only moves forward: it is written with S3's conditional writes against the
version it was read from, so a second door running at the same time (an overlapping
scheduled run) can never move it back. A delta link has no order of its own: it is replaced
only when it is still the one the door started the page from.
"""

from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from pydantic import BaseModel

from services import storage
from services.mailbox.config import Mailbox

PREFIX = "mailboxes/"


class Checkpoint(BaseModel):
    """A folder's position: every message up to last_uid is done (stored, or set aside)."""

    uidvalidity: int
    last_uid: int = 0


class Checkpoints(BaseModel):
    folders: dict[str, Checkpoint] = {}  # IMAP
    # Graph, per folder: the link that reads on from what is done (an @odata.nextLink in the
    # middle of a round, the round's @odata.deltaLink at its end)
    deltas: dict[str, str] = {}


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
    storage.write(bucket, key(mailbox.name, "mailbox"), mailbox.model_dump_json(indent=2).encode())


def mailboxes(bucket: str) -> list[Mailbox]:
    """Every configured mailbox, by name (none while there is no bucket yet)."""
    try:
        keys = storage.list_keys(bucket, PREFIX)
    except ClientError as error:
        if not storage.missing(error):
            raise
        return []
    found = [storage.read_json_if_present(bucket, k) for k in keys if k.endswith("/mailbox.json")]
    return sorted((Mailbox.model_validate(f) for f in found if f), key=lambda m: m.name)


def remove_mailbox(bucket: str, name: str) -> bool:
    """The configuration, checkpoint and health of the mailbox; False when there was none."""
    existed = storage.head(bucket, key(name, "mailbox")) is not None
    for what in ("mailbox", "checkpoint", "health"):
        storage.delete(bucket, key(name, what))
    return existed


def checkpoints(bucket: str, name: str) -> Checkpoints:
    found = storage.read_json_if_present(bucket, key(name, "checkpoint"))
    return Checkpoints.model_validate(found) if found else Checkpoints()


def advance(bucket: str, name: str, folder: str, position: Checkpoint) -> bool:
    """Move the folder's checkpoint to `position` unless it is already there or beyond (in
    the same UIDVALIDITY); False when another door moved it first."""
    found = storage.get(bucket, key(name, "checkpoint"))
    current = Checkpoints.model_validate_json(found.body) if found else None
    stored = current.folders.get(folder) if current else None
    same_numbering = stored and stored.uidvalidity == position.uidvalidity
    if same_numbering and stored.last_uid >= position.last_uid:
        return False
    current = current or Checkpoints()
    updated = current.model_copy(update={"folders": current.folders | {folder: position}})
    body = updated.model_dump_json().encode()
    return storage.put_if(bucket, key(name, "checkpoint"), body, found.etag if found else None)


def advance_delta(bucket: str, name: str, folder: str, read_from: str, link: str) -> bool:
    """Replace the folder's delta link with `link`, unless it is no longer `read_from` (the
    one the door read the page from; "" for none): False when another door moved it first."""
    found = storage.get(bucket, key(name, "checkpoint"))
    current = Checkpoints.model_validate_json(found.body) if found else Checkpoints()
    if current.deltas.get(folder, "") != read_from:
        return False
    updated = current.model_copy(update={"deltas": current.deltas | {folder: link}})
    body = updated.model_dump_json().encode()
    return storage.put_if(bucket, key(name, "checkpoint"), body, found.etag if found else None)


def health(bucket: str, name: str) -> Health:
    found = storage.read_json_if_present(bucket, key(name, "health"))
    return Health.model_validate(found) if found else Health()


def save_health(bucket: str, name: str, record: Health) -> None:
    storage.write(bucket, key(name, "health"), record.model_dump_json(indent=2).encode())


def now() -> datetime:
    return datetime.now(UTC)
