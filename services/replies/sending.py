"""Sending a reply, once, and what is kept of it:

replies/sent/<email key>/<draft_id>.json   who sent it when, which suggestion, how much was
                                           edited, SES's message id
replies/sent/<email key>/<draft_id>.eml    the raw MIME that went to SES
replies/pairs/<email key>/<draft_id>.json  the e-mail and its reply, for later models, and
                                           for building the index anew (reindex.py)

A reply is sent once per e-mail and draft: the sent record is claimed with a conditional put
(If-None-Match) before SES is called, so a second click, a retry or a second reviewer gets the
first one's record. A staff reply then joins the category's suggestion index.
"""

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from services import clients, placeholders, storage
from services.placeholders import PLACEHOLDERS
from services.replies import index_store, policy
from services.replies.index import EMBEDDING_ERRORS, Entry, Index, embed, index_text
from services.replies.original import Original
from services.settings import FunctionSettings

SENT = "replies/sent/"
PAIRS = "replies/pairs/"
logger = Logger(child=True)


class UnfinishedReply(ValueError):
    """The reply still holds placeholders the staff were to complete."""


class SendRequest(BaseModel):
    draft_id: str = Field(pattern=r"^[A-Za-z0-9-]{8,64}$")  # the page makes one per draft
    text: str = Field(min_length=1, max_length=20_000)
    sender: str = Field(min_length=1, max_length=100)  # the staff member
    suggestion: str = Field("", max_length=200)  # Suggestion.source, or "" (written anew)
    suggested_text: str = Field("", max_length=20_000)  # what the suggestion offered


class SentReply(BaseModel):
    message_id: str
    draft_id: str
    status: str  # "sending" (claimed) or "sent"
    sender: str
    sent_at: datetime
    suggestion: str
    edited: float  # 0: sent as suggested, 1: nothing of the suggestion left
    ses_message_id: str = ""
    reply_message_id: str = ""


@dataclass(frozen=True)
class Desk:
    """Where replies go out from: the bucket that keeps them, the address SES sends from
    (none: no reply is sent), the endpoint whose embeddings index them."""

    bucket: str
    support: str
    endpoint: str

    @classmethod
    def of(cls, settings: FunctionSettings) -> "Desk":
        return cls(settings.artifacts_bucket, settings.support_address, settings.endpoint_name)


def send(
    desk: Desk, original: Original, label: str, request: SendRequest, automatic: bool = False
) -> tuple[SentReply, bool]:
    """Send the reply once per e-mail and draft; returns the record and whether this call
    sent it (False: it was sent, or is being sent, already)."""
    address = check(desk, original, request)
    prefix = f"{SENT}{email_key(original.email.message_id)}/{request.draft_id}"
    record = SentReply(
        message_id=original.email.message_id,
        draft_id=request.draft_id,
        status="sending",
        sender=request.sender,
        sent_at=datetime.now(UTC),
        suggestion=request.suggestion,
        edited=edit_share(request.suggested_text, request.text),
    )
    if not storage.put_if(desk.bucket, f"{prefix}.json", record.model_dump_json().encode()):
        return sent_record(desk.bucket, f"{prefix}.json"), False
    message = compose(original, desk.support, address, request.text, automatic)
    try:
        answer = clients.client("ses").send_raw_email(
            Source=desk.support, Destinations=[address], RawMessage={"Data": message.as_bytes()}
        )
    except ClientError:
        storage.delete(desk.bucket, f"{prefix}.json")  # not sent: the claim goes
        raise
    record.status, record.ses_message_id = "sent", answer["MessageId"]
    record.reply_message_id = message["Message-ID"]
    storage.write(desk.bucket, f"{prefix}.eml", message.as_bytes())
    storage.write(desk.bucket, f"{prefix}.json", record.model_dump_json().encode())
    keep_pair(desk, original, label, request, automatic)
    return record, True


def check(desk: Desk, original: Original, request: SendRequest) -> str:
    """The address the reply goes to; NoReplyAddress or UnfinishedReply when it cannot go."""
    if not desk.support:
        raise policy.NoReplyAddress("no support address is configured to send from")
    left = sorted(set(re.findall(r"\{(\w+)\}", request.text)) & PLACEHOLDERS.keys())
    if left:
        raise UnfinishedReply(f"complete {', '.join('{' + n + '}' for n in left)} first")
    return policy.reply_address(original)


def keep_pair(
    desk: Desk, original: Original, label: str, request: SendRequest, automatic: bool
) -> None:
    """The e-mail and its reply under PAIRS; a staff reply also into the suggestion index
    (an automatic one is a template's text: the templates suggest it already)."""
    email = original.email
    reusable = placeholders.generalise(request.text, original.facts)
    pair = {"message_id": email.message_id, "label": label, "language": email.language,
            "subject": email.subject, "body": email.body_text, "reply": request.text,
            "reusable_reply": reusable, "sender": request.sender,
            "automatic": automatic}  # fmt: skip
    key = f"{PAIRS}{email_key(email.message_id)}/{request.draft_id}.json"
    storage.write(desk.bucket, key, json.dumps(pair, ensure_ascii=False).encode())
    if automatic:
        return
    try:
        vectors, model = embed(desk.endpoint, [index_text(email.subject, email.body_text)])
        added = Index(model, vectors, [Entry(email.message_id, email.language, reusable)])
        name = f"{email_key(email.message_id)}-{request.draft_id}"
        index_store.for_bucket(desk.bucket).add(label, added, name)
    except EMBEDDING_ERRORS as error:  # the pair is kept: reindex adds it
        logger.warning("sent, not indexed", reason=str(error))


def compose(
    original: Original, support: str, address: str, text: str, automatic: bool = False
) -> EmailMessage:
    """The reply, threaded under the original (In-Reply-To, References, Re: subject)."""
    message = EmailMessage()
    if automatic:  # RFC 3834: other responders do not answer it
        message["Auto-Submitted"] = "auto-replied"
    subject = one_line(original.email.subject)
    message["Subject"] = subject if re.match(r"(?i)(re|aw|antw):", subject) else f"Re: {subject}"
    message["From"] = support
    message["To"] = address
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=support.rsplit("@", 1)[-1])
    parent = one_line(original.header("Message-ID"))
    if parent:
        message["In-Reply-To"] = parent
        references = one_line(original.header("References"))
        message["References"] = " ".join(part for part in (references, parent) if part)
    message.set_content(text)
    return message


def one_line(text: str) -> str:
    """Text from the original, fit for a header: every kind of line break and run of
    whitespace (also U+2028, U+0085, which `email` refuses in a header) one space."""
    return " ".join(text.split())


def edit_share(suggested: str, sent: str) -> float:
    if not suggested:
        return 1.0
    return round(1 - difflib.SequenceMatcher(None, suggested, sent).ratio(), 3)


def email_key(message_id: str) -> str:
    """Message ids hold any characters: keys use their digest."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


def outbox(bucket: str) -> list[tuple[SentReply, str]]:
    """Every sent reply with the key of its raw MIME, oldest first (`postwerk outbox`)."""
    records = [
        (sent_record(bucket, key), key.removesuffix(".json") + ".eml")
        for key in storage.list_keys(bucket, SENT)
        if key.endswith(".json")
    ]
    return sorted(records, key=lambda pair: pair[0].sent_at)


def sent_record(bucket: str, key: str) -> SentReply:
    return SentReply.model_validate_json(storage.read(bucket, key))
