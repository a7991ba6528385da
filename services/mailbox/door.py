"""Exactly once, from a mailbox to the raw bucket.

For each folder: select it, compare its UIDVALIDITY with the checkpoint's (a changed one
means its UIDs were renumbered: the folder is read again from the start), and take the
messages above the checkpoint's last UID, oldest first, in bounded batches (100 messages,
32 MB). Each batch is:
1. stored: each message, raw and unchanged, to incoming/mailbox-<digest> with a conditional
   put (S3 If-None-Match), the digest of its Message-ID (of its bytes when it has none), so a
   message that is there already is a no-op, never a second object;
2. acted on, and only once stored: flagged, moved or deleted as the mailbox says;
3. checkpointed: the folder's last UID moves to the batch's last.
A crash or a dropped connection between two steps repeats, at the next fetch, only the
steps after the last checkpoint, and those are no-ops for what was done: nothing is
stored twice, nothing skipped.

What cannot be stored is set aside under the raw bucket's rejected/ prefix with its reason,
as ingest sets aside what is not an e-mail, and the batch goes on: a message over SES's
40 MB (its header is kept; the message stays in the mailbox, untouched) and one the server
fails to read (the reason only). Bytes that are stored but are no e-mail are ingest's to
reject, as for every other source.
"""

import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from aws_lambda_powertools import Logger
from imapclient.exceptions import IMAPClientError

from services import storage
from services.mailbox import state
from services.mailbox.config import Mailbox
from services.mailbox.credentials import LoginRefused, login_for
from services.mailbox.imap import CONNECTION_ERRORS, Fetched, Session, server_text

SES_SIZE_LIMIT = 40 * 1024 * 1024  # what SES receiving and the SMTP door take
BATCH_MESSAGES = 100
BATCH_BYTES = 32 * 1024 * 1024
INCOMING = "incoming/"
REJECTED = "rejected/"
STORERS = 8  # concurrent puts: a batch's messages are stored side by side
LOGIN_BACKOFF = (timedelta(minutes=1), timedelta(hours=1))  # first, longest
CONNECTION_BACKOFF = (timedelta(seconds=5), timedelta(minutes=5))

logger = Logger(service="mailbox")
storers = ThreadPoolExecutor(STORERS)


@dataclass(frozen=True)
class Buckets:
    raw: str  # where messages go (incoming/) or are set aside (rejected/)
    artifacts: str  # where the door's state lives (mailboxes/)


class RenumberedMeanwhile(Exception):
    """The folder's UIDVALIDITY changed while the door read it: the next fetch reads it
    again from the start."""


@dataclass
class Tally:
    """What one fetch did."""

    stored: int = 0
    duplicates: int = 0
    set_aside: int = 0
    backlog: int = 0


class Door:
    """The exactly-once steps for one mailbox, over a session it opens when first needed
    and again after the server dropped it while reading a message."""

    def __init__(self, mailbox: Mailbox, buckets: Buckets):
        self.mailbox = mailbox
        self.buckets = buckets
        self.opened: Session | None = None

    @property
    def session(self) -> Session:
        if self.opened is None:
            self.opened = Session(self.mailbox, login_for(self.mailbox))
        return self.opened

    def close(self) -> None:
        if self.opened is not None:
            self.opened.close()
            self.opened = None

    def sync(self, deadline: float | None = None) -> Tally:
        """Every folder up to its newest message, or until the deadline (time.monotonic());
        what is left is the backlog."""
        tally = Tally()
        for folder in self.mailbox.folders:
            self.sync_folder(folder, deadline, tally)
        return tally

    def sync_folder(self, folder: str, deadline: float | None, tally: Tally) -> None:
        uidvalidity = self.session.open(folder)
        known = state.checkpoints(self.buckets.artifacts, self.mailbox.name).folders.get(folder)
        last_uid = 0
        if known and known.uidvalidity == uidvalidity:
            last_uid = known.last_uid
        elif known:  # renumbered: read it all again; what was stored is a no-op
            logger.warning("UIDVALIDITY changed: reading again", mailbox=self.mailbox.name)
        uids = self.session.uids_after(last_uid)
        for before, batch in batches(lambda chunk: self.session.sizes(chunk), uids):
            if deadline is not None and time.monotonic() > deadline:
                tally.backlog += len(uids) - before
                return
            self.handle(folder, uidvalidity, batch, tally)
            position = state.Checkpoint(uidvalidity=uidvalidity, last_uid=max(batch))
            state.advance(self.buckets.artifacts, self.mailbox.name, folder, position)

    def handle(self, folder: str, uidvalidity: int, batch: dict[int, int], tally: Tally) -> None:
        """Store the batch's messages, then act on them; set aside what cannot be stored."""
        oversized = {uid: size for uid, size in batch.items() if size > SES_SIZE_LIMIT}
        for uid, size in oversized.items():
            reason = f"{size} bytes, over SES's limit of {SES_SIZE_LIMIT}: left in the mailbox"
            self.set_aside(folder, uidvalidity, uid, header_or_nothing(self.session, uid), reason)
        wanted = [uid for uid in batch if uid not in oversized]
        fetched, unreadable = self.fetch_readable(folder, uidvalidity, wanted)
        for uid, reason in unreadable.items():
            self.set_aside(folder, uidvalidity, uid, b"", reason)
        new = list(storers.map(self.store, fetched.values()))
        self.session.act(sorted(fetched))
        tally.stored += sum(new)
        tally.duplicates += len(new) - sum(new)
        tally.set_aside += len(oversized) + len(unreadable)

    def fetch_readable(
        self, folder: str, uidvalidity: int, uids: list[int], tries: int = 2
    ) -> tuple[dict[int, Fetched], dict[int, str]]:
        """The messages, and why the server could not read those it could not. One bad
        message fails a whole FETCH, and some servers (Dovecot) drop the connection over
        it, so after a failure each message is asked for alone, on a new connection where
        the old one is gone; one that fails alone (or drops the connection twice) is
        unreadable. A connection that cannot be opened again fails the fetch."""
        if not uids:
            return {}, {}
        try:
            return self.session.fetch(uids), {}
        except CONNECTION_ERRORS as lost:
            self.reopen(folder, uidvalidity)
            reason = f"the server closed the connection reading it, twice: {server_text(lost)}"
        except IMAPClientError as error:
            tries, reason = 1, f"the server could not read it: {server_text(error)}"
        if len(uids) == 1 and tries == 1:
            return {}, {uids[0]: reason}
        fetched, unreadable = {}, {}
        for uid in uids:
            one, why = self.fetch_readable(folder, uidvalidity, [uid], tries=1)
            fetched |= one
            unreadable |= why
        return fetched, unreadable

    def store(self, message: Fetched) -> bool:
        """True when stored now, False when it was there already."""
        key = f"{INCOMING}mailbox-{digest(message)}"
        return storage.put_if(self.buckets.raw, key, message.raw, ContentType="message/rfc822")

    def set_aside(self, folder: str, uidvalidity: int, uid: int, raw: bytes, reason: str):
        """rejected/mailbox/<mailbox>/<folder digest>/<UIDVALIDITY>-<UID>: the bytes there
        are (a header, or none), and <that>.reason.json with why, as ingest writes them."""
        key = rejected_key(self.mailbox.name, folder, uidvalidity, uid)
        if raw:
            storage.write(self.buckets.raw, key, raw)
        explanation = {
            "reason": reason,
            "key": key if raw else "",
            "mailbox": self.mailbox.name,
            "folder": folder,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "rejected_at": state.now().isoformat(),
        }
        body = json.dumps(explanation, ensure_ascii=False).encode()
        storage.write(self.buckets.raw, f"{key}.reason.json", body)
        logger.warning("set aside", mailbox=self.mailbox.name, uid=uid, reason=reason)

    def reopen(self, folder: str, uidvalidity: int) -> None:
        self.close()
        if self.session.open(folder) != uidvalidity:
            raise RenumberedMeanwhile(folder)


def batches(
    sizes_of: Callable[[list[int]], dict[int, int]], uids: list[int]
) -> Iterator[tuple[int, dict[int, int]]]:
    """The UIDs in batches of at most BATCH_MESSAGES messages and BATCH_BYTES (a message
    that is not fetched, being over SES's limit, counts nothing): (how many UIDs come
    before the batch, UID -> size). A UID expunged meanwhile has no size and is left out."""
    for start in range(0, len(uids), BATCH_MESSAGES):
        chunk = uids[start : start + BATCH_MESSAGES]
        sizes = sizes_of(chunk)  # on the session of the moment: a dropped one is replaced
        batch: dict[int, int] = {}
        before, weight = start, 0
        for offset, uid in enumerate(chunk):
            if uid not in sizes:
                continue
            fetched_bytes = 0 if sizes[uid] > SES_SIZE_LIMIT else sizes[uid]
            if batch and weight + fetched_bytes > BATCH_BYTES:
                yield before, batch
                batch, before, weight = {}, start + offset, 0
            batch[uid] = sizes[uid]
            weight += fetched_bytes
        if batch:
            yield before, batch


def rejected_key(mailbox: str, folder: str, uidvalidity: int, uid: int) -> str:
    folder_key = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return f"{REJECTED}mailbox/{mailbox}/{folder_key}/{uidvalidity}-{uid}"


def header_or_nothing(session: Session, uid: int) -> bytes:
    try:
        return session.header(uid)
    except CONNECTION_ERRORS:  # the connection is gone: the fetch fails, not the message
        raise
    except IMAPClientError:
        return b""


def digest(message: Fetched) -> str:
    """Of the Message-ID as ingest reads it (whitespace and angle brackets dropped), or of
    the bytes when there is none: the same e-mail gets the same key wherever it comes from."""
    identifier = message_id(message.message_id_header)
    return hashlib.sha256(identifier.encode() if identifier else message.raw).hexdigest()


def message_id(header: bytes) -> str:
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", header)
    for line in unfolded.splitlines():
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"message-id":
            return re.sub(r"\s+", "", value.decode("ascii", "replace")).strip("<>")
    return ""


def fetch_once(mailbox: Mailbox, buckets: Buckets, deadline: float | None = None) -> Tally:
    """Log in, every folder, log out."""
    door = Door(mailbox, buckets)
    try:
        return door.sync(deadline)
    finally:
        door.close()


def recorded(mailbox: Mailbox, buckets: Buckets, fetch: Callable[[], Tally]) -> state.Health:
    """Run one fetch and record its health: when, how many, the backlog, or why it failed
    and when to try again (a refused login waits 1 minute, then twice as long each time up
    to an hour; a failed connection 5 s up to 5 minutes: backoff, not a retry storm).
    A failure is one log line naming the mailbox and the reason, never the secret."""
    health = state.health(buckets.artifacts, mailbox.name)
    started = state.now()
    health.watched_since = health.watched_since or started
    health.last_attempt_at = started
    try:
        tally = fetch()
    except LoginRefused as error:
        failed(health, f"login refused: {error}", LOGIN_BACKOFF, login_refused=True)
    except (*CONNECTION_ERRORS, IMAPClientError) as error:
        reason = f"connection: {type(error).__name__}: {server_text(error)}"
        failed(health, reason, CONNECTION_BACKOFF)
    except Exception as error:  # recorded and logged; the other mailboxes go on
        failed(health, f"{type(error).__name__}: {server_text(error)}", CONNECTION_BACKOFF)
    else:
        health = state.Health(
            watched_since=health.watched_since,
            last_attempt_at=started,
            last_success_at=state.now(),
            stored=tally.stored,
            duplicates=tally.duplicates,
            set_aside=tally.set_aside,
            backlog=tally.backlog,
        )
        logger.info("fetched", mailbox=mailbox.name, **vars(tally))
    if health.last_error:
        logger.warning(f"mailbox {mailbox.name}: {health.last_error}; next try after "
                       f"{health.retry_after:%H:%M:%S} UTC", mailbox=mailbox.name)  # fmt: skip
    state.save_health(buckets.artifacts, mailbox.name, health)
    return health


def failed(
    health: state.Health,
    reason: str,
    backoff: tuple[timedelta, timedelta],
    login_refused: bool = False,
) -> None:
    first, longest = backoff
    health.failures += 1
    health.last_error = reason[:500]
    health.last_error_at = state.now()
    health.login_refused = login_refused
    health.retry_after = health.last_error_at + min(first * 2 ** (health.failures - 1), longest)


def fetch_all(buckets: Buckets, deadline: float) -> dict[str, tuple[Mailbox, state.Health]]:
    """One fetch of every mailbox whose backoff is over, each given an equal share of the
    time left, so a mailbox with a long backlog never starves the others."""
    found = state.mailboxes(buckets.artifacts)
    results = {}
    for left, mailbox in zip(range(len(found), 0, -1), found, strict=True):
        health = state.health(buckets.artifacts, mailbox.name)
        if not health.waiting(state.now()):
            share = time.monotonic() + (deadline - time.monotonic()) / left
            fetch = functools.partial(fetch_once, mailbox, buckets, share)
            health = recorded(mailbox, buckets, fetch)
        results[mailbox.name] = (mailbox, health)
    return results
