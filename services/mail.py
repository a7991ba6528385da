"""Raw e-mail bytes -> an `email.v1` record, for real-world mail.

Guarantees (docs/architecture.md 6): `parse_email` raises nothing but `NotAnEmail`, for any
bytes; its cost is roughly linear in the size (headers and text are cut before the work
that grows with them, attachments are measured, never decoded into text); what was cut,
repaired or could not be read is named in the record's `flags`.

The standard library's parser does the MIME structure, with the compat32 policy and raw
header values: its modern header parser raises on real-world defects and grows
super-linearly with a header's size, so headers are decoded here (RFC 2047 and raw 8-bit
bytes, with the same charset repair as bodies). Added: the body part with the text,
HTML to text (selectolax), charset repair (charset-normalizer), dropping quoted replies,
forward headers, signatures and disclaimers (services.quotes), size bounds, and the
language (services.language).
"""

import codecs
import contextlib
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parsedate_to_datetime

from charset_normalizer import from_bytes
from selectolax.lexbor import LexborHTMLParser

from services.language import language
from services.quotes import strip, strip_html_history
from services.records import Attachment, EmailV1, Flag, Source

MAX_BODY_CHARS = 20_000  # more is truncated (and flagged): the model reads 128 tokens anyway
MAX_SUBJECT_CHARS = 1_000
MAX_HEADER_BYTES = 16_384  # one header field, folded lines included
MAX_ENCODED_HEADER = 2 * MAX_SUBJECT_CHARS  # of a value whose encoded words are decoded
MAX_HEAD_BYTES = 256 * 1024  # the message's header block
MAX_MIME_HEADER_BYTES = 1_500  # a Content-* header, as the MIME parser reads it
MAX_TEXT_BYTES = 4 * MAX_BODY_CHARS  # of a plain text part: enough for MAX_BODY_CHARS
MAX_HTML_BYTES = 1_000_000  # of an HTML part: markup takes most of it
MAX_SINGLE_TEXT_BYTES = 2 * MAX_HTML_BYTES  # of a one-part message, base64 included
MAX_PARTS = 500  # MIME parts looked at; the rest are not read
MAX_ATTACHMENTS = 100  # listed in the record
MAX_TEXT_PARTS = 20  # plain text parts read in search of the text (empty ones are skipped)
MAX_FILENAME_CHARS = 300  # of an attachment's name, encoded
MAX_BOUNDARY_LINES = 4 * MAX_PARTS  # lines starting with "--" the parser gets, at most
MAX_MULTIPARTS = 64  # multipart boundaries declared, so the nesting depth
MAX_PARSER_STEPS = 1_000_000  # lines times nesting depth the parser gets, at most
MAX_PARTITION_KEY = 256  # Kinesis' limit on the partition key, i.e. the message id

MAIL_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")
NOT_CHARSETS = {"punycode", "idna"}  # codecs for host names; punycode takes seconds on 80 KB
LATIN = {"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "iso-8859-15", "windows-1252"}
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")  # when the address parser gives up
HEADER_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")
LEADING_BLANK_LINES = re.compile(rb"(?:[ \t]*\r?\n)*")
TOP_CONTENT_TYPE = re.compile(rb"^content-type:\s*([!-~]*)", re.IGNORECASE | re.MULTILINE)
ATTACHED = re.compile(rb"^content-disposition:\s*attachment", re.IGNORECASE | re.MULTILINE)
HTML_BLOCKS = "p, div, br, tr, li, h1, h2, h3, h4, h5, h6, table, blockquote, pre, hr, dt, dd"
HTML_DOCUMENT = re.compile(r"\A\s*(?:<!doctype html|<html|<head|<body|<div|<p[ >]|<table)", re.I)


class NotAnEmail(ValueError):
    """The bytes are not an e-mail; the message says why."""


class RawHeaders(Compat32):
    """compat32 that hands out header values as they came, cut to MAX_HEADER_BYTES (MIME
    headers to MAX_MIME_HEADER_BYTES: they are read for every part): MIME parameters
    (boundary, charset, filename) are then read by the old, lenient code of email.message,
    and the text of a header is decoded by `decode_header_value`."""

    def header_fetch_parse(self, name, value):
        mime = name.lower().startswith("content-")
        return value[: MAX_MIME_HEADER_BYTES if mime else MAX_HEADER_BYTES]


POLICY = RawHeaders()


def parse_email(raw: bytes, bucket: str, key: str) -> EmailV1:
    flags: set[Flag] = set()
    message = mime_tree(bounded(raw, flags), flags)
    if not any(name in message for name in MAIL_HEADERS):
        raise NotAnEmail("no e-mail headers (From, To, Subject, Date or Message-ID)")
    subject = cut(header(message, "Subject", flags), MAX_SUBJECT_CHARS, "subject_truncated", flags)
    body = cut(body_text(message, subject, flags), MAX_BODY_CHARS, "body_truncated", flags)
    senders = addresses(message, "From", flags)
    recipients = addresses(message, "To", flags) + addresses(message, "Cc", flags)
    digest = hashlib.sha256(raw).hexdigest()
    identifier = message_id(message, digest, flags)
    received = received_at(message, flags)
    listed = attachments(message, flags)
    return EmailV1(
        message_id=identifier,
        received_at=received,
        sender=senders[0] if senders else "",
        recipients=recipients,
        subject=subject,
        body_text=body,
        body_truncated="body_truncated" in flags,
        language=language(f"{subject}\n{body}"),
        attachments=listed,
        source=Source(bucket=bucket, key=key, sha256=digest),
        flags=sorted(flags),
    )


def bounded(raw: bytes, flags: set[Flag]) -> bytes:
    """The bytes the MIME parser gets: blank lines before the header block dropped, the
    block as mail servers read it and cut to MAX_HEAD_BYTES (flagged), the rest cut where
    the parser's work would pass its bound (`cut_parts`). NotAnEmail when the bytes do not
    start with a header line."""
    blank = LEADING_BLANK_LINES.match(raw, 0, 4096)
    raw = raw[blank.end() :] if blank.end() else raw  # no copy of 25 MB for nothing
    check_looks_like_email(raw)
    end = head_end(raw)
    head, rest = raw[:end], raw[end:]
    if len(head) > MAX_HEAD_BYTES:
        flags.add("header_truncated")
        head = head[: head.rfind(b"\n", 0, MAX_HEAD_BYTES) + 1] or head[:MAX_HEAD_BYTES]
    head = lenient_head(head, flags)
    return head + (cut_text(rest, flags) if text_only(head) else cut_parts(rest, flags))


def text_only(head: bytes) -> bool:
    """Whether the message is one text part, not an attachment: its text is read up to
    MAX_HTML_BYTES, so the parser need not see more."""
    found = TOP_CONTENT_TYPE.search(head)
    kind = found.group(1).split(b";")[0].lower() if found else b""
    return (not kind or kind.startswith(b"text/")) and not ATTACHED.search(head)


def cut_text(body: bytes, flags: set[Flag]) -> bytes:
    if len(body) <= MAX_SINGLE_TEXT_BYTES:
        return body
    flags.add("body_truncated")
    return body[:MAX_SINGLE_TEXT_BYTES]


def lenient_head(head: bytes, flags: set[Flag]) -> bytes:
    """A common indentation removed, `Name :` read as `Name:`, each field cut to
    MAX_HEADER_BYTES (flagged)."""
    lines = head.splitlines(keepends=True)
    indent = lines[0][: len(lines[0]) - len(lines[0].lstrip(b" \t"))]
    fields: list[list[bytes]] = []
    for line in lines:
        if indent and line.startswith(indent) and HEADER_NAME.match(line, len(indent)):
            line = line[len(indent) :]
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([re.sub(rb"\A([!-9;-~]+)[ \t]+:", rb"\1:", line)])
    joined = [b"".join(field) for field in fields]
    if any(len(field) > MAX_HEADER_BYTES for field in joined):
        flags.add("header_truncated")
        joined = [field[:MAX_HEADER_BYTES].rstrip(b"\r\n") + b"\r\n" for field in joined]
    return b"".join(joined)


def cut_parts(body: bytes, flags: set[Flag]) -> bytes:
    """The body cut (flagged) where the parser's work would pass its bound: it grows with
    the parts, and with the lines times the nesting depth (each line is matched against
    every open boundary). The depth is at most the number of boundaries declared."""
    boundaries = [*positions(body, b"oundary", MAX_MULTIPARTS + 1)]  # any case of the "b"
    cut = min(
        boundaries[-1] if len(boundaries) > MAX_MULTIPARTS else len(body),
        nth(body, b"\n--", MAX_BOUNDARY_LINES),
    )
    steps = (1 + len(boundaries)) * body.count(b"\n", 0, cut)
    if steps > MAX_PARSER_STEPS:
        cut = cut * MAX_PARSER_STEPS // steps
    if cut >= len(body):
        return body
    flags.add("parts_truncated")
    return body[: body.rfind(b"\n", 0, cut) + 1]


def positions(data: bytes, needle: bytes, limit: int) -> Iterator[int]:
    """Where the needle starts, the first `limit` times."""
    at = data.find(needle)
    for _ in range(limit):
        if at < 0:
            return
        yield at
        at = data.find(needle, at + 1)


def nth(data: bytes, needle: bytes, n: int) -> int:
    """Where the n-th needle starts; the length of the data when there are fewer."""
    found = [*positions(data, needle, n)]
    return found[-1] if len(found) == n else len(data)


def head_end(raw: bytes) -> int:
    """Where the blank line after the header block starts (the length when there is none)."""
    crlf = raw.find(b"\n\r\n")
    lf = raw.find(b"\n\n", 0, crlf if crlf >= 0 else len(raw))  # not past the other
    ends = [at for at in (crlf, lf) if at >= 0]
    return min(ends) + 1 if ends else len(raw)


def check_looks_like_email(raw: bytes) -> None:
    if not raw or raw.isspace():  # stops at the first other byte: no copy of 25 MB
        raise NotAnEmail("empty file")
    start = raw[:4096]
    if b"\x00" in start[: head_end(start)]:  # a binary part after the headers may hold NULs
        raise NotAnEmail("binary content (NUL bytes), not an e-mail")
    first_line = start.split(b"\n", 1)[0]
    if not re.match(rb"^[ \t]*(?:From |[!-9;-~]+[ \t]*:)", first_line):
        raise NotAnEmail(f"does not start with a header line: {first_line[:40]!r}")


def mime_tree(raw: bytes, flags: set[Flag]) -> Message:
    """The parsed message; nesting too deep for the parser's recursion leaves the headers
    only (flagged)."""
    try:
        message = message_from_bytes(raw, policy=POLICY)
    except RecursionError:
        flags.add("mime_defect")
        return BytesParser(policy=POLICY).parsebytes(raw, headersonly=True)
    found = parts(message)
    if any(part.defects for part in found):
        flags.add("mime_defect")
    if len(found) == MAX_PARTS:
        flags.add("parts_truncated")
    return message


def parts(message: Message) -> list[Message]:
    """The first MAX_PARTS parts, depth first, nested messages included (no recursion:
    a deeply nested message must not exhaust the stack)."""
    found, pending = [], [message]
    while pending and len(found) < MAX_PARTS:
        part = pending.pop()
        found.append(part)
        if part.is_multipart():  # also a message/rfc822 part: a list of one message
            pending.extend(reversed([p for p in part.get_payload() if isinstance(p, Message)]))
    return found


def header(message: Message, name: str, flags: set[Flag]) -> str:
    """A header's text, RFC 2047 encoded words decoded (Subject)."""
    return decode_header_value(message.get(name) or "", flags)


def raw_header(message: Message, name: str, flags: set[Flag]) -> str:
    """A header's text as it came, raw 8-bit bytes decoded (Message-ID, Date)."""
    return header_text(message.get(name) or "", flags)


def decode_header_value(value: str, flags: set[Flag], limit: int = MAX_ENCODED_HEADER) -> str:
    """RFC 2047 encoded words and raw 8-bit bytes -> text, each with the charset repair of
    `decode_bytes`; a value that cannot be decoded as declared is raw-decoded (flagged).
    Cut to `limit` first (flagged): decode_header's pattern grows quadratically on values
    like "=?a?q?=?a?q?…"."""
    value = unfold(str(value))
    if len(value) > limit:
        flags.add("header_truncated")
        value = value[:limit]
    # raw 8-bit bytes came as surrogates, decoded text (RFC 2231) as itself: as UTF-8 bytes
    # both, one char per byte for decode_header
    raw = value.encode("utf-8", "surrogateescape").decode("latin-1")
    try:
        chunks = decode_header(raw)
    except HeaderParseError:
        flags.add("header_defect")
        chunks = [(raw, None)]
    pieces = [(c.encode("latin-1") if isinstance(c, str) else c, cs) for c, cs in chunks]
    texts = [declared_text(data, charset) for data, charset in pieces]
    undecoded = b" ".join(d for (d, _), t in zip(pieces, texts, strict=True) if t is None)
    fallback = detected(undecoded, flags) if undecoded else "utf-8"  # one detection a header
    text = "".join(
        text if text is not None else data.decode(fallback, errors="replace")
        for (data, _), text in zip(pieces, texts, strict=True)
    )
    return re.sub(r"[\r\n]+", " ", text).strip()


def header_text(value: str, flags: set[Flag]) -> str:
    """Raw 8-bit bytes -> text with the charset repair of `decode_bytes`, lines unfolded."""
    text = decode_bytes(unfold(str(value)).encode("utf-8", "surrogateescape"), None, flags)
    return re.sub(r"[\r\n]+", " ", text).strip()


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def decode_bytes(data: bytes, charset: str | None, flags: set[Flag]) -> str:
    """The text of some bytes: as declared (`declared_text`), else in a detected charset,
    else UTF-8 with replacement characters (flagged)."""
    text = declared_text(data, charset)
    return text if text is not None else data.decode(detected(data, flags), errors="replace")


def declared_text(data: bytes, charset: str | None) -> str | None:
    """UTF-8 where a Latin-1 label (which never fails) hides it, else the declared charset
    when it decodes cleanly, else ASCII when that is all there is; None otherwise."""
    declared = (charset or "").strip().lower()
    if not declared or declared in LATIN or declared == "unknown-8bit":
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-8")
    try:
        if codecs.lookup(declared or "us-ascii").name in NOT_CHARSETS:
            raise LookupError(declared)
        return data.decode(declared or "us-ascii")
    except (LookupError, ValueError):  # unknown, not decodable, or not a name at all
        return data.decode("ascii") if data.isascii() else None


def detected(data: bytes, flags: set[Flag]) -> str:
    """The charset charset-normalizer finds (about 1 ms), UTF-8 when it finds none."""
    best = from_bytes(data).best()
    if best is None:
        flags.add("charset_unknown")
        return "utf-8"
    return best.encoding


def addresses(message: Message, name: str, flags: set[Flag]) -> list[str]:
    # the addresses are ASCII: display names need no decoding, nor its cost on long lists
    values = [header_text(v, flags) for v in message.get_all(name, [])]
    try:
        return [address for _, address in getaddresses(values) if "@" in address]
    except RecursionError:  # comments "((((" nested past the parser's recursion
        flags.add("header_defect")
        return ADDRESS.findall(" ".join(values))


def message_id(message: Message, digest: str, flags: set[Flag]) -> str:
    """The Message-ID, or a hash of the bytes: a re-delivered e-mail keeps its id. An id
    too long for a partition key is hashed too."""
    value = re.sub(r"\s+", "", raw_header(message, "Message-ID", flags)).strip("<>")
    if len(value) > MAX_PARTITION_KEY:
        return f"sha256-{hashlib.sha256(value.encode()).hexdigest()[:32]}"
    return value or f"sha256-{digest[:32]}"


def received_at(message: Message, flags: set[Flag]) -> datetime:
    try:
        moment = parsedate_to_datetime(raw_header(message, "Date", flags))
    except (TypeError, ValueError, IndexError, OverflowError):
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def disposition(part: Message) -> str:
    return str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()


def is_attachment(part: Message) -> bool:
    return (  # the parameters last: decoding them costs most
        disposition(part) == "attachment"
        or part.get_content_maintype() not in ("text", "multipart", "message")
        or part.get_param("filename", header="content-disposition") is not None
        or part.get_param("name") is not None
    )


def body_text(message: Message, subject: str, flags: set[Flag]) -> str:
    """The first text part with text, not attached (an inline one may have a file name):
    plain text (HTML-looking plain text turned into text), else the first HTML part's text;
    what the sender wrote of it (`sender_text`)."""
    html, plain = None, 0
    for part in parts(message):
        if part.is_multipart() or disposition(part) == "attachment":
            continue
        kind = part.get_content_type()
        if part.get_content_maintype() == "multipart":  # no parts found: read its raw text
            kind = "text/plain"
        if kind == "text/plain" and plain < MAX_TEXT_PARTS:
            plain += 1
            text = part_text(part, MAX_TEXT_BYTES, flags)
            if HTML_DOCUMENT.match(text):
                text = html_text(text)
            if text.strip():
                return sender_text(text, subject, flags)
        elif kind == "text/html" and html is None:
            html = part
    if html is None:
        return ""
    return sender_text(html_text(part_text(html, MAX_HTML_BYTES, flags)), subject, flags)


def sender_text(text: str, subject: str, flags: set[Flag]) -> str:
    """Without quoted history, forward headers, signatures and disclaimers
    (services.quotes); a forwarded message's text kept is flagged `forwarded`."""
    stripped = strip(text.replace("\r\n", "\n"), subject)
    if stripped.forwarded:
        flags.add("forwarded")
    return normalise_whitespace(stripped.text)


def part_text(part: Message, limit: int, flags: set[Flag]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    if len(payload) > limit:
        flags.add("body_truncated")
        payload = payload[:limit]
    charset = part.get_param("charset")
    if isinstance(charset, tuple):  # RFC 2231 (charset*=...): (charset, language, value)
        charset = charset[2]
    return decode_bytes(payload, charset, flags)


def html_text(html: str) -> str:
    """The text of HTML, a line per block, the history that mail clients mark left out."""
    tree = LexborHTMLParser(html)
    strip_html_history(tree)
    for hidden in tree.css("script, style, head, title, template"):
        hidden.decompose()
    for block in tree.css(HTML_BLOCKS):
        block.insert_after("\n")
    for cell in tree.css("td, th"):
        cell.insert_after(" ")
    root = tree.body or tree.root
    return root.text(separator="") if root is not None else ""


def normalise_whitespace(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def cut(text: str, limit: int, flag: Flag, flags: set[Flag]) -> str:
    if len(text) <= limit:
        return text
    flags.add(flag)
    return text[:limit]


def attachments(message: Message, flags: set[Flag]) -> list[Attachment]:
    """The first MAX_ATTACHMENTS attachments (more are flagged)."""
    attached = [p for p in parts(message) if not p.is_multipart() and is_attachment(p)]
    if len(attached) > MAX_ATTACHMENTS:
        flags.add("parts_truncated")
    return [
        Attachment(filename=filename(p), content_type=p.get_content_type(), size=size(p))
        for p in attached[:MAX_ATTACHMENTS]
    ]


def size(part: Message) -> int:
    """The attachment's size in bytes: base64 is counted, not decoded (a third of the time
    a 20 MB attachment takes), other encodings are decoded."""
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        with contextlib.suppress(ValueError):  # raw 8-bit bytes in the payload: decode it
            encoded = part.get_payload().rstrip()
            characters = len(encoded) - sum(encoded.count(space) for space in "\r\n\t ")
            return max(0, characters * 3 // 4 - encoded.endswith("=") - encoded.endswith("=="))
    payload = part.get_payload(decode=True)
    return len(payload) if isinstance(payload, bytes) else 0


def filename(part: Message) -> str | None:
    """The attachment's name: RFC 2231 (`filename*=charset''...`) decoded here with the
    charset repair, since the standard library's decoding raises on real-world values."""
    for param, field in (("filename", "content-disposition"), ("name", "content-type")):
        value = part.get_param(param, header=field)
        if isinstance(value, tuple):  # RFC 2231: (charset, language, one char per byte)
            charset, _, text = value
            raw = text[:MAX_FILENAME_CHARS].encode("latin-1", "surrogateescape")
            return decode_bytes(raw, charset, set())
        if value is not None:
            return decode_header_value(value, set(), MAX_FILENAME_CHARS)
    return None
