"""Exactly once, from a mailbox to the raw bucket: the IMAP door, and the one pass over
every mailbox, of either kind (`open_door`: this IMAP door, or graph_door.GraphDoor).

For each folder: select it, compare its UIDVALIDITY with the checkpoint's (a changed one
means its UIDs were renumbered: the folder is read again from the start), and take the
messages above the checkpoint's last UID, oldest first, in bounded batches (100 messages,
32 MB). Each batch takes the steps in steps.py:
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
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from imapclient.exceptions import IMAPClientError

from services.mailbox import state
from services.mailbox.config import Mailbox
from services.mailbox.credentials import LoginRefused, login_for
from services.mailbox.graph import Throttled
from services.mailbox.graph_door import GraphDoor
from services.mailbox.imap import CONNECTION_ERRORS, Session, server_text
from services.mailbox.steps import (  # noqa: F401 (what the door's users import from here)
    BATCH_BYTES,
    BATCH_MESSAGES,
    INCOMING,
    REJECTED,
    SES_SIZE_LIMIT,
    Buckets,
    Fetched,
    Tally,
    digest,
    logger,
    message_id,
    oversized,
    rejected_prefix,
    set_aside,
    store,
    store_then_act,
)

LOGIN_BACKOFF = (timedelta(minutes=1), timedelta(hours=1))  # first, longest
CONNECTION_BACKOFF = (timedelta(seconds=5), timedelta(minutes=5))


class RenumberedMeanwhile(Exception):
    """The folder's UIDVALIDITY changed while the door read it: the next fetch reads it
    again from the start."""


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
        too_big = {uid: size for uid, size in batch.items() if size > SES_SIZE_LIMIT}
        for uid, size in too_big.items():
            header = header_or_nothing(self.session, uid)
            self.set_aside(folder, uidvalidity, uid, header, oversized(size))
        wanted = [uid for uid in batch if uid not in too_big]
        fetched, unreadable = self.fetch_readable(folder, uidvalidity, wanted)
        for uid, reason in unreadable.items():
            self.set_aside(folder, uidvalidity, uid, b"", reason)
        in_order = {uid: fetched[uid] for uid in sorted(fetched)}
        store_then_act(self.buckets.raw, in_order, self.session.act, tally)
        tally.set_aside += len(too_big) + len(unreadable)

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

    def set_aside(self, folder: str, uidvalidity: int, uid: int, raw: bytes, reason: str):
        """rejected/mailbox/<mailbox>/<folder digest>/<UIDVALIDITY>-<UID> (steps.set_aside)."""
        item, where = f"{uidvalidity}-{uid}", {"uidvalidity": uidvalidity, "uid": uid}
        set_aside(self.buckets, self.mailbox.name, folder, item, raw, reason, **where)

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
    return f"{rejected_prefix(mailbox, folder)}{uidvalidity}-{uid}"


def header_or_nothing(session: Session, uid: int) -> bytes:
    try:
        return session.header(uid)
    except CONNECTION_ERRORS:  # the connection is gone: the fetch fails, not the message
        raise
    except IMAPClientError:
        return b""


def open_door(mailbox: Mailbox, buckets: Buckets) -> "Door | GraphDoor":
    """The mailbox's door: IMAP, or Microsoft Graph (graph_door.py); both log in when first
    needed and take the same steps (steps.py)."""
    return GraphDoor(mailbox, buckets) if mailbox.kind == "graph" else Door(mailbox, buckets)


def fetch_once(mailbox: Mailbox, buckets: Buckets, deadline: float | None = None) -> Tally:
    """Log in, every folder, log out."""
    door = open_door(mailbox, buckets)
    try:
        return door.sync(deadline)
    finally:
        door.close()


def recorded(mailbox: Mailbox, buckets: Buckets, fetch: Callable[[], Tally]) -> state.Health:
    """Run one fetch and record its health: when, how many, the backlog, or why it failed
    and when to try again (a refused login waits 1 minute, then twice as long each time up
    to an hour; a failed connection 5 s up to 5 minutes; a service that throttles the door
    (Graph: HTTP 429) as long as it asked: backoff, not a retry storm).
    A failure is one log line naming the mailbox and the reason, never the secret."""
    health = state.health(buckets.artifacts, mailbox.name)
    started = state.now()
    health.watched_since = health.watched_since or started
    health.last_attempt_at = started
    try:
        tally = fetch()
    except LoginRefused as error:
        failed(health, f"login refused: {error}", LOGIN_BACKOFF, login_refused=True)
    except Throttled as error:
        failed(health, f"throttled: {error}", CONNECTION_BACKOFF)
        health.retry_after = health.last_error_at + timedelta(seconds=error.seconds)
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
