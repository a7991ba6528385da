"""The exactly-once steps both doors take (door.py for IMAP, graph_door.py for Microsoft
Graph), whatever the mailbox's protocol:
1. store: each message, raw and unchanged, to incoming/mailbox-<digest> with a conditional
   put (S3 If-None-Match), the digest of its Message-ID (of its bytes when it has none), so a
   message that is there already is a no-op, never a second object;
2. act, and only on what is stored (flag or mark read, move, delete): the door's own call;
3. checkpoint (state.py), and only after both: what a crash repeats are no-ops.
What cannot be stored is set aside under the raw bucket's rejected/ prefix with its reason,
as ingest sets aside what is not an e-mail.
"""

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from services import storage
from services.mailbox import state

SES_SIZE_LIMIT = 40 * 1024 * 1024  # what SES receiving and the SMTP door take
BATCH_MESSAGES = 100
BATCH_BYTES = 32 * 1024 * 1024
INCOMING = "incoming/"
REJECTED = "rejected/"
STORERS = 8  # concurrent puts: a batch's messages are stored side by side

logger = Logger(service="mailbox")
storers = ThreadPoolExecutor(STORERS)


@dataclass(frozen=True)
class Buckets:
    raw: str  # where messages go (incoming/) or are set aside (rejected/)
    artifacts: str  # where the door's state lives (mailboxes/)


@dataclass(frozen=True)
class Fetched:
    """A message as the server holds it: its bytes, and its Message-ID header (IMAP: read by
    the server, so no parsing of ours can trip over a malformed message; Graph: the MIME
    header section)."""

    raw: bytes
    message_id_header: bytes


@dataclass
class Tally:
    """What one fetch did."""

    stored: int = 0
    duplicates: int = 0
    set_aside: int = 0
    backlog: int = 0

    def count(self, new: Iterable[bool]) -> None:
        """Stored now (True) or there already (False)."""
        for fresh in new:
            self.stored += fresh
            self.duplicates += not fresh


def incoming_key(message: Fetched) -> str:
    return f"{INCOMING}mailbox-{digest(message)}"


def store(bucket: str, message: Fetched) -> bool:
    """True when stored now, False when it was there already."""
    return storage.put_if(bucket, incoming_key(message), message.raw, ContentType="message/rfc822")


def store_then_act(bucket: str, fetched: dict, act: Callable[[list], None], tally: Tally) -> None:
    """Steps 1 and 2 for a batch (its ids -> the messages): stored side by side, then acted on,
    all of them, the duplicates too (a crash may have come between their store and act)."""
    tally.count(list(storers.map(lambda message: store(bucket, message), fetched.values())))
    act(list(fetched))


def set_aside(
    buckets: Buckets, mailbox: str, folder: str, item: str, raw: bytes, reason: str, **where
) -> str:
    """rejected/mailbox/<mailbox>/<folder digest>/<item>: the bytes there are (a header, or
    none), and <that>.reason.json with why and where it is in the mailbox (`where`), as
    ingest writes them. The key."""
    key = rejected_prefix(mailbox, folder) + item
    if raw:
        storage.write(buckets.raw, key, raw)
    explanation = {
        "reason": reason,
        "key": key if raw else "",
        "mailbox": mailbox,
        "folder": folder,
        **where,
        "rejected_at": state.now().isoformat(),
    }
    body = json.dumps(explanation, ensure_ascii=False).encode()
    storage.write(buckets.raw, f"{key}.reason.json", body)
    logger.warning("set aside", mailbox=mailbox, reason=reason, **where)
    return key


def rejected_prefix(mailbox: str, folder: str) -> str:
    folder_key = hashlib.sha256(folder.encode()).hexdigest()[:16]
    return f"{REJECTED}mailbox/{mailbox}/{folder_key}/"


def oversized(size: int | str) -> str:
    return f"{size} bytes, over SES's limit of {SES_SIZE_LIMIT}: left in the mailbox"


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


def header_section(raw: bytes) -> bytes:
    """A message's header, up to the first empty line (all of it when there is none)."""
    found = [(at, len(blank)) for blank in (b"\r\n\r\n", b"\n\n") if (at := raw.find(blank)) >= 0]
    return raw[: sum(min(found))] if found else raw
