"""Replies: templates, suggestions and sent replies, under the artifacts bucket's `replies/`.

replies/templates/<template_id>/<version>.json   every saved version (the newest counts)
replies/sent/<email key>/<draft_id>.json          a sent reply: who, when, which suggestion,
                                                  how much was edited, SES's message id
replies/sent/<email key>/<draft_id>.eml           the raw MIME that went to SES
replies/pairs/<email key>/<draft_id>.json         the e-mail and its reply, for later models,
                                                  and for rebuilding the index (reindex)
replies/index/<category>.npz                      sent replies by the e-mail they answered
                                                  (services/reply_index.py); rebuilt when
                                                  another model serves (`postwerk promote`,
                                                  the monitor's refresh_index)
replies/added/<category>/<email key>-<draft>.npz  a reply sent since the index was written,
                                                  folded into it by every FOLD_AT-th send
replies/auto/<address digest>.json                when the address last got an automatic
                                                  reply (services/autoreply.py)

A template's body may hold the placeholders of services/placeholders.py; one the e-mail
does not provide stays in the text as `{name}`, for the staff to complete. A reply is sent once per
e-mail and draft: the sent record is claimed with a conditional put (If-None-Match) before
SES is called, so a second click, a retry or a second reviewer gets the first one's record.
"""

import difflib
import functools
import hashlib
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, make_msgid, parseaddr, unquote

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field, ValidationError

from services import clients, mail, placeholders
from services.placeholders import PLACEHOLDERS
from services.records import ClassificationV1, EmailV1
from services.reply_index import Entry, Index, StaleIndex, embed, in_time, serving_model

TEMPLATES = "replies/templates/"
SENT = "replies/sent/"
PAIRS = "replies/pairs/"
INDEX = "replies/index/"
AUTO = "replies/auto/"  # per address: when it last got an automatic reply
ADDED = "replies/added/"  # per category: the staff replies sent since its index was written
FOLD_AT = 100  # added replies that a send folds into the index (one rewrite per 100 sends)
READERS = 10  # concurrent S3 reads (pairs, added replies): boto3's pool holds 10 connections
MAX_SUGGESTIONS = 3
ANGLE_ADDRESS = re.compile(r"(?P<name>.*?)\s*<[^<>@]*@[^<>]*>\s*", re.S)  # fullmatch
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")  # S3's conditional writes
MISSING = ("404", "NoSuchKey", "NotFound")  # S3: no such key (GET, or HEAD without a body)
# Why no similar replies could be found: no endpoint, a bad answer, a stale index.
EMBEDDING_ERRORS = (ClientError, BotoCoreError, ValidationError, ValueError, StaleIndex)
logger = Logger(child=True)
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


class UnfinishedReply(ValueError):
    """The reply still holds placeholders the staff were to complete."""


class UnknownPlaceholder(ValueError):
    """A template uses a placeholder not in PLACEHOLDERS."""


class SaveConflict(Exception):
    """Someone saved this template meanwhile."""


class TemplateDraft(BaseModel):
    category: str = Field(min_length=1, max_length=100)
    language: str = Field(pattern=r"^[a-z]{2}$")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=10_000)
    retired: bool = False
    # Sent automatically to e-mails of its category and language scoring above (autoreply.py).
    auto_reply_above: float | None = Field(None, gt=0, lt=1)


class ReplyTemplate(TemplateDraft):
    template_id: str
    version: int
    author: str
    saved_at: datetime


class Suggestion(BaseModel):
    source: str  # "template:<id>@<version>"
    title: str
    text: str
    missing: list[str]  # placeholders left in the text for the staff to complete


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


# Templates


def save_template(
    bucket: str, draft: TemplateDraft, author: str, template_id: str | None = None
) -> ReplyTemplate:
    """A new template, or a new version of one; refuses unknown placeholders."""
    try:
        unknown = placeholders.names(draft.body) - PLACEHOLDERS.keys()
    except ValueError as error:  # an unmatched brace
        raise UnknownPlaceholder(f"the body's braces do not pair up: {error}") from None
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise UnknownPlaceholder(
            f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {known})"
        )
    previous = latest(bucket, template_id) if template_id else None
    template = ReplyTemplate(
        **draft.model_dump(),
        template_id=template_id or uuid.uuid4().hex[:12],
        version=previous.version + 1 if previous else 1,
        author=author,
        saved_at=now(),
    )
    key = f"{TEMPLATES}{template.template_id}/{template.version:06d}.json"
    if not put_if(bucket, key, template.model_dump_json().encode()):
        raise SaveConflict(f"template {template.template_id} was saved meanwhile; reload")
    return template


def latest(bucket: str, template_id: str) -> ReplyTemplate | None:
    keys = list_keys(bucket, f"{TEMPLATES}{template_id}/")
    return read_template(bucket, max(keys)) if keys else None


def templates(bucket: str) -> list[ReplyTemplate]:
    """The newest version of every template, retired ones included."""
    newest: dict[str, str] = {}
    for key in list_keys(bucket, TEMPLATES):
        template_id = key.split("/")[2]
        newest[template_id] = max(key, newest.get(template_id, ""))
    return [read_template(bucket, key) for key in sorted(newest.values())]


@functools.lru_cache(maxsize=4096)  # a version's key is written once, never changed
def read_template(bucket: str, key: str) -> ReplyTemplate:
    body = clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return ReplyTemplate.model_validate_json(body)


def automatic_template(
    found: list[ReplyTemplate], result: ClassificationV1
) -> ReplyTemplate | None:
    """The live template of `found` that answers this result automatically, if one does
    (the one with the lowest threshold the score exceeds)."""
    language = result.input.language if result.input else None
    candidates = [
        template
        for template in found
        if not template.retired
        and template.category == result.label
        and template.language == language
        and template.auto_reply_above is not None
        and result.score > template.auto_reply_above
    ]
    return min(candidates, key=lambda template: template.auto_reply_above, default=None)


# Suggestions


def facts(email: EmailV1, raw: bytes) -> dict[str, str]:
    """What the placeholders can be filled with, from the e-mail."""
    found = placeholders.stated(f"{email.subject}\n{email.body_text}")
    greeted = placeholders.greeting_name(sender(headers(raw)))
    if greeted:
        found["name"] = greeted
    found["salutation"] = placeholders.salutation(greeted, email.language)
    # a brace in a name ("{amount}") would read as a placeholder left to complete
    return {name: value.replace("{", "").replace("}", "") for name, value in found.items()}


def suggest(
    bucket: str, endpoint: str, email: EmailV1, raw: bytes, category: str
) -> tuple[list[Suggestion], str]:
    """Up to MAX_SUGGESTIONS replies in the e-mail's language (in any, when the e-mail is too
    short to tell: the staff pick): the category's live templates, then what staff sent to
    the most similar earlier e-mails of the category (by the endpoint's embeddings). Also
    why there are none of the latter, when that is not simply an empty index ("" otherwise)."""
    known = facts(email, raw)
    language = None if email.language == "unknown" else email.language
    suggestions = []
    for template in templates(bucket):
        if template.retired or template.category != category:
            continue
        if language and template.language != language:
            continue
        text, missing = placeholders.fill(template.body, in_language(known, template.language))
        source = f"template:{template.template_id}@{template.version}"
        suggestions.append(Suggestion(source=source, title=template.title, text=text,
                                      missing=missing))  # fmt: skip
    wanted = MAX_SUGGESTIONS - len(suggestions)
    if wanted <= 0:
        return suggestions[:MAX_SUGGESTIONS], ""
    try:
        index, _ = load_index(bucket, category)
        if not index.entries:
            return suggestions, ""
        vectors, model = embed(endpoint, [index_text(email.subject, email.body_text)])
        similar = index.nearest(model, vectors[0], language, wanted, email.message_id)
    except EMBEDDING_ERRORS as error:
        logger.warning("no similar replies", reason=str(error))
        return suggestions, f"no replies to similar e-mails: {error}"
    for entry in similar:
        text, missing = placeholders.fill(entry.reply, in_language(known, entry.language))
        suggestions.append(Suggestion(source=f"reply:{entry.message_id}", text=text,
                           title="Sent to a similar e-mail", missing=missing))  # fmt: skip
    return suggestions, ""


def in_language(known: dict[str, str], language: str) -> dict[str, str]:
    """The e-mail's facts with the greeting in the reply's language."""
    return known | {"salutation": placeholders.salutation(known.get("name", ""), language)}


def index_text(subject: str, body: str) -> str:
    return f"{subject}\n{body}"


_loaded: dict[str, tuple[str, Index]] = {}  # per warm container: key -> (ETag, index)
_added: dict[str, Index] = {}  # per warm container: an added reply (it never changes) by key
_merged: dict[str, tuple[tuple, Index]] = {}  # per category: (ETag, added keys) -> the merge


def load_index(bucket: str, category: str) -> tuple[Index, str | None]:
    """The category's index with the replies added since it was written, and the written
    index's ETag (None: none yet). Each object is read again only when it changed."""
    index, etag, _ = with_added(bucket, category)
    return index, etag


def with_added(bucket: str, category: str) -> tuple[Index, str | None, list[str]]:
    """load_index, and the keys of the added replies in it. The added ones are listed first:
    a fold meanwhile deletes them only once the index it wrote holds them (a reply folded
    between the listing and its read is missed by this call alone)."""
    keys = list_keys(bucket, added_prefix(category))
    index, etag = read_index(bucket, index_key(category))
    for gone in [key for key in _added if key.startswith(added_prefix(category))]:
        if gone not in keys:  # folded: the index holds it now
            del _added[gone]
    if fresh := [key for key in keys if key not in _added]:  # a cold container: up to FOLD_AT
        with ThreadPoolExecutor(READERS) as pool:
            list(pool.map(functools.partial(read_added, bucket), fresh))
    present = tuple(key for key in keys if key in _added)
    if _merged.get(category, ((),))[0] != (etag, present):
        _merged.pop(category, None)  # one copy of the vectors at a time (50,000: 77 MB)
        _merged[category] = ((etag, present), index.merged([_added[key] for key in present]))
    return _merged[category][1], etag, list(present)


def read_added(bucket: str, key: str) -> Index | None:
    """An added reply (None: folded and deleted meanwhile), read once per container."""
    if key not in _added:
        try:
            body = clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] not in MISSING:
                raise
            return None
        _added[key] = Index.from_bytes(body)
    return _added[key]


def read_index(bucket: str, key: str) -> tuple[Index, str | None]:
    """A written index by its key, and its ETag (None: there is none)."""
    s3 = clients.client("s3")
    try:
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in MISSING:
            raise
        return Index(), None
    if _loaded.get(key, ("",))[0] != etag:
        _loaded.pop(key, None)  # not two versions in memory while the new one is read
        answer = s3.get_object(Bucket=bucket, Key=key)
        _loaded[key] = (answer["ETag"], Index.from_bytes(answer["Body"].read()))
    return _loaded[key][1], _loaded[key][0]


def add_to_index(bucket: str, category: str, added: Index, name: str) -> None:
    """A sent reply, as an object of its own beside the category's index: a send writes a
    few KB, not the index (52 MB at 50,000 replies). The send that finds FOLD_AT of them
    folds them into the index (If-Match: when another send folded meanwhile, it leaves it)."""
    s3 = clients.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{added_prefix(category)}{name}.npz", Body=added.to_bytes())
    if len(list_keys(bucket, added_prefix(category))) < FOLD_AT:
        return
    index, etag, keys = with_added(bucket, category)
    if index.stale(added.model):  # another model serves: reindex will build it anew
        return
    if write_index(bucket, category, index, etag):
        delete_keys(bucket, keys)


def write_index(bucket: str, category: str, index: Index, etag: str | None) -> bool:
    """The index in place of the one with this ETag (None: where there was none), with its
    model in the object's metadata (a HEAD tells whether it is stale); False when another
    writer replaced or removed it meanwhile."""
    # If-Match on a removed key: NoSuchKey, not 412
    return put_if(bucket, index_key(category), index.to_bytes(), etag,
                  lost=(*CONFLICTS, *MISSING), Metadata={"model": index.model})  # fmt: skip


def written_model(bucket: str, key: str) -> str:
    """The model of a written index's vectors, from its metadata (read from the index itself
    when it was written without)."""
    head = clients.client("s3").head_object(Bucket=bucket, Key=key)
    return head["Metadata"].get("model") or read_index(bucket, key)[0].model


def added_prefix(category: str) -> str:
    return f"{ADDED}{key_name(category)}/"


def key_name(category: str) -> str:
    """The category as it stands in the keys of its index and its added replies; one with
    other characters gets its digest too ("a b" and "a_b" are two categories)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", category)
    if safe == category:
        return safe
    return f"{safe}-{hashlib.sha256(category.encode()).hexdigest()[:8]}"


def key_name_of(key: str) -> str:
    """key_name from an index's key, or an added reply's."""
    return key.removeprefix(ADDED).split("/")[0] if key.startswith(ADDED) else (
        key.removeprefix(INDEX).removesuffix(".npz"))  # fmt: skip


def index_key(category: str) -> str:
    return f"{INDEX}{key_name(category)}.npz"


# Sending


def reply_address(raw: bytes) -> str:
    """Reply-To, else From, of the original; refused when absent, malformed or automated."""
    return address_in(headers(raw))


def address_in(fields) -> str:
    """reply_address of the original's parsed headers."""
    found = mail.addresses(fields, "Reply-To", set()) or mail.addresses(fields, "From", set())
    if not found:
        raise NoReplyAddress("the original has no Reply-To or From address to answer")
    address = found[0]
    if not MAILBOX.fullmatch(address):
        raise NoReplyAddress("the original's reply address is malformed (or not ASCII)")
    if NO_REPLY.match(address):
        raise NoReplyAddress("the original's reply address is a no-reply or system address")
    return address


def automated(raw: bytes, own_address: str = "") -> str:
    """Why no automatic reply may answer this e-mail (RFC 3834, mailing lists, bounces,
    auto-responders, our own address), or "" when a person seems to have written it."""
    fields = headers(raw)
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
    try:
        address = address_in(fields)
    except NoReplyAddress as error:
        return str(error)
    if own_address and address.lower() == own_address.lower():
        return "our own support address"
    threads = " ".join(
        mail.raw_header(fields, name, set()) for name in ("In-Reply-To", "References")
    )
    if own_address and f"@{own_address.rsplit('@', 1)[-1].lower()}>" in threads.lower():
        return "a reply to one of our e-mails"  # for staff: an automatic reply answers once
    if AUTOMATED.match(address):
        return "a notification, newsletter or auto-responder address"
    return ""


def claim_automatic_reply(bucket: str, address: str, every: timedelta) -> bool:
    """Claim this address's automatic reply for the period (RFC 3834: at most one response
    to a sender within several days); False when it had one, or another claim won."""
    key = auto_key(address)
    s3, body = clients.client("s3"), json.dumps({"sent_at": now().isoformat()}).encode()
    try:
        last = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] not in MISSING:
            raise
        return put_if(bucket, key, body)
    if now() - datetime.fromisoformat(json.loads(last["Body"].read())["sent_at"]) < every:
        return False
    return put_if(bucket, key, body, last["ETag"])


def release_automatic_reply(bucket: str, address: str) -> None:
    """The claimed reply was not sent after all."""
    clients.client("s3").delete_object(Bucket=bucket, Key=auto_key(address))


def auto_key(address: str) -> str:
    return f"{AUTO}{hashlib.sha256(address.lower().encode()).hexdigest()[:32]}.json"


def compose(
    raw: bytes, email: EmailV1, support: str, address: str, text: str, automatic: bool = False
) -> EmailMessage:
    """The reply, threaded under the original (In-Reply-To, References, Re: subject)."""
    original = headers(raw)
    message = EmailMessage()
    if automatic:  # RFC 3834: other responders do not answer it
        message["Auto-Submitted"] = "auto-replied"
    subject = one_line(email.subject)
    message["Subject"] = subject if re.match(r"(?i)(re|aw|antw):", subject) else f"Re: {subject}"
    message["From"] = support
    message["To"] = address
    message["Date"] = format_datetime(now())
    message["Message-ID"] = make_msgid(domain=support.rsplit("@", 1)[-1])
    parent = one_line(mail.raw_header(original, "Message-ID", set()))
    if parent:
        message["In-Reply-To"] = parent
        references = one_line(mail.raw_header(original, "References", set()))
        message["References"] = " ".join(part for part in (references, parent) if part)
    message.set_content(text)
    return message


def one_line(text: str) -> str:
    """Text from the original, fit for a header: every kind of line break and run of
    whitespace (also U+2028, U+0085, which `email` refuses in a header) one space."""
    return " ".join(text.split())


def send(
    bucket: str,
    support: str,
    endpoint: str,
    email: EmailV1,
    raw: bytes,
    label: str,
    request: SendRequest,
    automatic: bool = False,
) -> tuple[SentReply, bool]:
    """Send the reply once per e-mail and draft; returns the record and whether this call
    sent it (False: it was sent, or is being sent, already)."""
    if not support:
        raise NoReplyAddress("no support address is configured to send from")
    left = sorted(set(re.findall(r"\{(\w+)\}", request.text)) & PLACEHOLDERS.keys())
    if left:
        raise UnfinishedReply(f"complete {', '.join('{' + n + '}' for n in left)} first")
    address = reply_address(raw)
    prefix = f"{SENT}{email_key(email.message_id)}/{request.draft_id}"
    record = SentReply(
        message_id=email.message_id,
        draft_id=request.draft_id,
        status="sending",
        sender=request.sender,
        sent_at=now(),
        suggestion=request.suggestion,
        edited=edit_share(request.suggested_text, request.text),
    )
    if not put_if(bucket, f"{prefix}.json", record.model_dump_json().encode()):
        return sent_record(bucket, f"{prefix}.json"), False
    message = compose(raw, email, support, address, request.text, automatic)
    try:
        answer = clients.client("ses").send_raw_email(
            Source=support, Destinations=[address], RawMessage={"Data": message.as_bytes()}
        )
    except ClientError:
        clients.client("s3").delete_object(Bucket=bucket, Key=f"{prefix}.json")  # not sent
        raise
    record.status, record.ses_message_id = "sent", answer["MessageId"]
    record.reply_message_id = message["Message-ID"]
    s3 = clients.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}.eml", Body=message.as_bytes())
    s3.put_object(Bucket=bucket, Key=f"{prefix}.json", Body=record.model_dump_json().encode())
    reusable = placeholders.generalise(request.text, facts(email, raw))
    pair = {"message_id": email.message_id, "label": label, "language": email.language,
            "subject": email.subject, "body": email.body_text, "reply": request.text,
            "reusable_reply": reusable, "sender": request.sender,
            "automatic": automatic}  # fmt: skip
    pair_key = f"{PAIRS}{email_key(email.message_id)}/{request.draft_id}.json"
    s3.put_object(Bucket=bucket, Key=pair_key, Body=json.dumps(pair, ensure_ascii=False).encode())
    if automatic:  # a template's text: the templates suggest it already
        return record, True
    try:
        vectors, model = embed(endpoint, [index_text(email.subject, email.body_text)])
        added = Index(model, vectors, [Entry(email.message_id, email.language, reusable)])
        add_to_index(bucket, label, added, f"{email_key(email.message_id)}-{request.draft_id}")
    except EMBEDDING_ERRORS as error:  # the pair is kept: reindex adds it
        logger.warning("sent, not indexed", reason=str(error))
    return record, True


def reindex(
    bucket: str, endpoint: str, deadline: float | None = None, only: set[str] | None = None
) -> tuple[dict[str, int], int]:
    """Every category's index (or those `only` names, by their key_name) built anew from the
    staff replies among the e-mail/reply pairs, with the serving model's embeddings (after a
    promotion); an index no pair is left to rebuild from is removed (its vectors would never
    compare again). Returns the replies indexed per category, and how many pairs were left
    out: automatic replies, and pairs sent before pairs kept a reusable reply. Past the
    deadline (time.monotonic()) it raises OutOfTime, the categories written so far rebuilt,
    the others as they were (a later call with `only` the stale ones goes on from there)."""
    indexed = indexes(bucket)  # before the pairs: an index begun later stays
    added = list_keys(bucket, ADDED)  # and a reply added later (its pair may be read too)
    keys = list_keys(bucket, PAIRS)
    by_category: dict[str, list[dict]] = {}
    left_out = 0
    pool = ThreadPoolExecutor(READERS)  # the S3 round trips overlap
    try:
        for number, pair in enumerate(pool.map(functools.partial(read_json, bucket), keys)):
            in_time(deadline, f"after reading {number} of {len(keys)} e-mail/reply pairs")
            if pair.get("automatic") or "reusable_reply" not in pair:
                left_out += 1
                continue
            by_category.setdefault(pair["label"], []).append(pair)
    finally:  # out of time: the reads not begun are dropped, not waited for
        pool.shutdown(cancel_futures=True)
    rebuilt = {}
    for category, pairs in by_category.items():
        if only is not None and key_name(category) not in only:
            continue
        texts = [index_text(pair["subject"], pair["body"]) for pair in pairs]
        vectors, model = embed(endpoint, texts, deadline)
        entries = [Entry(p["message_id"], p["language"], p["reusable_reply"]) for p in pairs]
        # conditional: a send that folded meanwhile wrote the serving model's index, with a
        # reply these pairs lack
        if write_index(bucket, category, Index(model, vectors, entries),
                       indexed.get(index_key(category))):  # fmt: skip
            delete_keys(bucket, [key for key in added if key_name_of(key) == key_name(category)])
            rebuilt[category] = len(pairs)
    named = {key_name(category) for category in by_category}
    gone = [key for key in [*indexed, *added] if key_name_of(key) not in named]  # no pair left
    delete_keys(bucket, gone)
    return rebuilt, left_out


def indexes(bucket: str) -> dict[str, str]:
    """The written indexes' keys and ETags."""
    return {key: etag for key, etag in listing(bucket, INDEX).items() if key.endswith(".npz")}


def refresh_index(bucket: str, endpoint: str, deadline: float | None = None) -> str:
    """For a promotion that did not wait for the endpoint (the monitor's): once the endpoint
    serves, the categories whose index holds another model's vectors are built anew
    (reindex). What was done, in words; "" when nothing was to do: no index, or every one
    current (then it cost two listings, a DescribeEndpoint, one embedding, a HEAD per index
    and a read per added reply not read before)."""
    written, added = indexes(bucket), list_keys(bucket, ADDED)
    if not written and not added:
        return ""
    status, model = serving_model(endpoint)
    if not model:
        return f"reply index not checked: endpoint {endpoint} is {status}"
    stale = {key_name_of(key) for key in written if written_model(bucket, key) != model}
    stale |= {key_name_of(key) for key in added
              if (index := read_added(bucket, key)) is not None and index.stale(model)}  # fmt: skip
    if not stale:
        return ""
    counts, left_out = reindex(bucket, endpoint, deadline, only=stale)
    rebuilt = ", ".join(f"{category} {count}" for category, count in sorted(counts.items()))
    words = f"reply index rebuilt for model {model}: {rebuilt or 'no staff replies to index'}"
    return words + (f" ({left_out} automatic or older replies left out)" if left_out else "")


def outbox(bucket: str) -> list[tuple[SentReply, str]]:
    """Every sent reply with the key of its raw MIME, oldest first (for `postwerk outbox`:
    a client of its own, not the function's cached one)."""
    s3 = boto3.client("s3")
    records = [
        (sent_record(bucket, key, s3), key.removesuffix(".json") + ".eml")
        for key in list_keys(bucket, SENT, s3)
        if key.endswith(".json")
    ]
    return sorted(records, key=lambda pair: pair[0].sent_at)


def sent_record(bucket: str, key: str, s3=None) -> SentReply:
    body = (s3 or clients.client("s3")).get_object(Bucket=bucket, Key=key)["Body"].read()
    return SentReply.model_validate_json(body)


def edit_share(suggested: str, sent: str) -> float:
    if not suggested:
        return 1.0
    return round(1 - difflib.SequenceMatcher(None, suggested, sent).ratio(), 3)


# Storage helpers


def headers(raw: bytes):
    """The original's headers as they came (services/mail.py's lenient policy: the modern
    one raises on malformed address headers such as "From: a@")."""
    return BytesHeaderParser(policy=mail.POLICY).parsebytes(raw)


def sender(fields) -> str:
    """The sender's name from From ("" when it gives none): what stands before its <address>,
    RFC 2047 words decoded only then. Outlook's "Müller, Hans", unquoted in 8-bit or inside
    an encoded word, holds a comma that parseaddr takes for the end of an address."""
    value = mail.raw_header(fields, "From", set())
    if match := ANGLE_ADDRESS.fullmatch(value):
        name = match["name"].strip()
        name = unquote(name) if len(name) > 1 and name[0] == name[-1] == '"' else name
    else:  # "address (Name)"
        try:
            name = parseaddr(value)[0]
        except RecursionError:  # comments "((((" nested past the parser's recursion
            return ""
    return mail.decode_header_value(name, set()).strip()


def email_key(message_id: str) -> str:
    """Message ids hold any characters: keys use their digest."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


def put_if(
    bucket: str, key: str, body: bytes, etag: str | None = None, lost=CONFLICTS, **fields
) -> bool:
    """Write over the object with this ETag, or (None) only where there is none: S3's
    conditional writes. False when another writer came first (an error code in `lost`)."""
    condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
    try:
        clients.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **condition, **fields)
    except ClientError as error:
        if error.response["Error"]["Code"] in lost:
            return False
        raise
    return True


def read_json(bucket: str, key: str) -> dict:
    return json.loads(clients.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def delete_keys(bucket: str, keys: list[str]) -> None:
    s3 = clients.client("s3")
    for start in range(0, len(keys), 1000):  # DeleteObjects' limit
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        if errors := answer.get("Errors"):
            logger.warning("not deleted", keys=len(errors), code=errors[0].get("Code"))


def list_keys(bucket: str, prefix: str, s3=None) -> list[str]:
    return list(listing(bucket, prefix, s3))


def listing(bucket: str, prefix: str, s3=None) -> dict[str, str]:
    """The keys under the prefix, and their ETags."""
    s3 = s3 or clients.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def now() -> datetime:
    return datetime.now(UTC)
