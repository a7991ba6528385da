"""Whom a reply may go to, and whether a machine may send one.

A reply goes to the original's Reply-To, else its From; never to a malformed, non-ASCII,
no-reply or system address. An automatic reply (services/autoreply.py) is not sent to mail
that a machine seems to have written (RFC 3834's Auto-Submitted and Precedence, mailing-list
and auto-responder headers, bounces and reports, notification addresses, our own address, a
reply to one of our e-mails), and at most once per address within a period, claimed under
`replies/auto/<address digest>.json` before it is sent.
"""

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

from services import mail, storage
from services.replies.original import Original

AUTO = "replies/auto/"  # per address: when it last got an automatic reply
# Present only on mail a machine sent or that asks not to be answered by one: mailing lists
# (RFC 2369/2919), auto-responders, Exchange's suppression and loop headers.
MACHINE_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe",
                   "List-Owner", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
                   "X-Loop", "X-MS-Exchange-Inbox-Rules-Loop", "Feedback-ID")  # fmt: skip
# What SES sends to: an ASCII local part (RFC 5322's atext and dots), a domain of labels.
MAILBOX = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# Addresses no one reads (a staff reply is refused), and those that mostly machines send
# from (an automatic reply is not sent; staff may still answer them).
NO_REPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer-daemon|postmaster|bounces?)\b[^@]*@", re.I
)
AUTOMATED = re.compile(
    r"^(?:auto-?(?:reply|responder)|notifications?|newsletters?|alerts?)\b[^@]*@", re.I
)


class NoReplyAddress(ValueError):
    """The original e-mail gives no address a reply could go to; the message says why."""


def reply_address(original: Original) -> str:
    """Reply-To, else From, of the original; refused when absent, malformed or automated."""
    fields = original.headers
    found = mail.addresses(fields, "Reply-To", set()) or mail.addresses(fields, "From", set())
    if not found:
        raise NoReplyAddress("the original has no Reply-To or From address to answer")
    address = found[0]
    if not MAILBOX.fullmatch(address):
        raise NoReplyAddress("the original's reply address is malformed (or not ASCII)")
    if NO_REPLY.match(address):
        raise NoReplyAddress("the original's reply address is a no-reply or system address")
    return address


def automated(original: Original, own_address: str = "") -> str:
    """Why no automatic reply may answer this e-mail (RFC 3834, mailing lists, bounces,
    auto-responders, our own address), or "" when a person seems to have written it."""
    return machine_mark(original) or address_mark(original, own_address)


def machine_mark(original: Original) -> str:
    """The header that marks the e-mail as a machine's, in words ("" when none does)."""
    fields = original.headers
    if str(fields.get("Auto-Submitted", "no")).strip().lower() != "no":
        return "Auto-Submitted"  # its value is not logged: it may hold anything
    for name in ("Precedence", "X-Precedence"):
        precedence = str(fields.get(name, "")).strip().lower()
        if precedence in ("bulk", "list", "junk", "auto_reply"):
            return f"{name}: {precedence}"
    for name in MACHINE_HEADERS:
        if fields.get(name) is not None:
            return f"sent by a machine ({name})"
    if str(fields.get("Return-Path", "")).strip() == "<>":
        return "an empty Return-Path (a bounce)"
    if fields.get_content_type() == "multipart/report":
        return "a delivery or read report (multipart/report)"
    return ""


def address_mark(original: Original, own_address: str) -> str:
    """Why the reply address rules out an automatic reply, in words ("" when it does not)."""
    try:
        address = reply_address(original)
    except NoReplyAddress as error:
        return str(error)
    if own_address and address.lower() == own_address.lower():
        return "our own support address"
    threads = " ".join(original.header(name) for name in ("In-Reply-To", "References"))
    if own_address and f"@{own_address.rsplit('@', 1)[-1].lower()}>" in threads.lower():
        return "a reply to one of our e-mails"  # for staff: an automatic reply answers once
    if AUTOMATED.match(address):
        return "a notification, newsletter or auto-responder address"
    return ""


def claim_automatic_reply(bucket: str, address: str, every: timedelta) -> bool:
    """Claim this address's automatic reply for the period (RFC 3834: at most one response
    to a sender within several days); False when it had one, or another claim won."""
    key = auto_key(address)
    now = datetime.now(UTC)
    body = json.dumps({"sent_at": now.isoformat()}).encode()
    last = storage.get(bucket, key)
    if last is None:
        return storage.put_if(bucket, key, body)
    if now - datetime.fromisoformat(json.loads(last.body)["sent_at"]) < every:
        return False
    return storage.put_if(bucket, key, body, last.etag)


def release_automatic_reply(bucket: str, address: str) -> None:
    """The claimed reply was not sent after all."""
    storage.delete(bucket, auto_key(address))


def auto_key(address: str) -> str:
    return f"{AUTO}{hashlib.sha256(address.lower().encode()).hexdigest()[:32]}.json"
