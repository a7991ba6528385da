"""Raw e-mail bytes -> an `email.v1` record, for real-world mail.

The standard library's modern parser (policy.default) does the MIME work: multipart,
quoted-printable and base64, RFC 2047 headers, nested message/rfc822. Added here: text from
HTML-only mail (BeautifulSoup), decoding when the declared charset is wrong or unknown
(charset-normalizer), dropping quoted replies and signatures, a size bound, and a language
guess for German and English.
"""

import hashlib
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes

from services.records import Attachment, EmailV1, Source

MAX_BODY_CHARS = 20_000  # more is truncated (and flagged): the model reads 128 tokens anyway

# Where the quoted history or the signature starts (English and German mail clients).
CUT_MARKERS = re.compile(
    r"^(?:"
    r"On .{1,200} wrote:\s*$"
    r"|Am .{1,200} schrieb .{0,200}:\s*$"
    r"|-{2,} ?(?:Original Message|Ursprüngliche Nachricht"
    r"|Forwarded message|Weitergeleitete Nachricht) ?-{2,}.*$"
    r"|(?:From|Von): .+\n(?:Sent|Gesendet): .+$"
    r"|-- ?$"
    r")",
    re.MULTILINE,
)
STOPWORDS = {
    "de": {
        "und",
        "der",
        "die",
        "das",
        "ich",
        "nicht",
        "ist",
        "mit",
        "sie",
        "ein",
        "eine",
        "für",
        "bitte",
        "mein",
        "meine",
        "ihre",
        "wir",
        "auf",
        "zu",
        "den",
        "danke",
    },
    "en": {
        "the",
        "and",
        "is",
        "not",
        "you",
        "my",
        "with",
        "for",
        "please",
        "your",
        "we",
        "to",
        "of",
        "a",
        "an",
        "this",
        "thanks",
        "have",
        "it",
        "on",
    },
}


class NotAnEmail(ValueError):
    """The bytes are not an e-mail; the message says why."""


def parse_email(raw: bytes, bucket: str, key: str) -> EmailV1:
    check_looks_like_email(raw)
    message = message_from_bytes(raw, policy=policy.default)
    if not any(message.get(h) for h in ("From", "To", "Subject", "Date", "Message-ID")):
        raise NotAnEmail("no e-mail headers (From, To, Subject, Date or Message-ID)")
    body, truncated = bound(strip_history(body_text(message)))
    subject = header(message, "Subject")
    return EmailV1(
        message_id=message_id(message, raw),
        received_at=received_at(message),
        sender=addresses(message, "From")[0] if addresses(message, "From") else "",
        recipients=addresses(message, "To") + addresses(message, "Cc"),
        subject=subject,
        body_text=body,
        body_truncated=truncated,
        language=language(f"{subject}\n{body}"),
        attachments=attachments(message),
        source=Source(bucket=bucket, key=key, sha256=hashlib.sha256(raw).hexdigest()),
    )


def check_looks_like_email(raw: bytes) -> None:
    if not raw.strip():
        raise NotAnEmail("empty file")
    head = raw[:4096]
    if b"\x00" in head:
        raise NotAnEmail("binary content (NUL bytes), not an e-mail")
    first_line = head.split(b"\n", 1)[0]
    if not re.match(rb"^(?:From |[!-9;-~]+:)", first_line):
        raise NotAnEmail(f"does not start with a header line: {first_line[:40]!r}")


def header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name) or "").strip()
    except (ValueError, IndexError):  # a defective header: its raw value is still useful
        return str(message.get_all(name, [""])[0]).strip()


def addresses(message: EmailMessage, name: str) -> list[str]:
    try:
        values = message.get_all(name, [])
    except (ValueError, IndexError):
        return []
    return [address for _, address in getaddresses([str(v) for v in values]) if address]


def message_id(message: EmailMessage, raw: bytes) -> str:
    """The Message-ID, or a hash of the bytes: a re-delivered e-mail keeps its id."""
    value = header(message, "Message-ID").strip("<> \t")
    return value or f"sha256-{hashlib.sha256(raw).hexdigest()[:32]}"


def received_at(message: EmailMessage) -> datetime:
    try:
        moment = parsedate_to_datetime(header(message, "Date"))
    except (TypeError, ValueError, IndexError):
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def body_text(message: EmailMessage) -> str:
    """Plain text if there is some, else the HTML's text; a forwarded message's otherwise."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        nested = next((p for p in message.walk() if p.get_content_type() == "message/rfc822"), None)
        if nested is not None:
            return body_text(nested.get_payload(0))
        return ""
    text = decode(part)
    if part.get_content_type() == "text/html":
        text = BeautifulSoup(text, "html.parser").get_text("\n")
    return normalise_whitespace(text)


def decode(part: EmailMessage) -> str:
    """The part's text: the declared charset when it decodes cleanly, else a detected one."""
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        best = from_bytes(payload).best()
        return str(best) if best is not None else payload.decode("utf-8", errors="replace")


def normalise_whitespace(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_history(text: str) -> str:
    """Drop `>` quoted lines and everything from a reply header or signature on."""
    marker = CUT_MARKERS.search(text)
    if marker and marker.start() > 0:
        text = text[: marker.start()]
    kept = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(kept).strip()


def bound(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_BODY_CHARS:
        return text, False
    return text[:MAX_BODY_CHARS], True


def language(text: str) -> str:
    words = re.findall(r"[a-zäöüß]+", text.lower())
    counts = {lang: sum(word in stop for word in words) for lang, stop in STOPWORDS.items()}
    best = max(counts, key=counts.get)
    if counts[best] == 0 or list(counts.values()).count(counts[best]) > 1:
        return "unknown"
    return best


def attachments(message: EmailMessage) -> list[Attachment]:
    found = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else len(part.as_bytes())
        found.append(
            Attachment(
                filename=part.get_filename(), content_type=part.get_content_type(), size=size
            )
        )
    return found
