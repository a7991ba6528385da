"""Property: parse_email raises nothing but NotAnEmail, for any bytes (docs/architecture.md 6).

Three shapes of input: the fixtures mutated byte-wise, random header blocks, and random MIME
trees; each gives a record or NotAnEmail, never another exception."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.mail import NotAnEmail, parse_email
from services.records import EmailV1
from tests.support.mail import MAIL_FIXTURES

FIXTURES = sorted(MAIL_FIXTURES.glob("*.eml"))
SEEDS = [path.read_bytes() for path in FIXTURES]
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "MIME-Version",
        "X-Mailer",
    ]
)
HEADER_BITS = st.sampled_from(
    [
        b"<>",
        b"<[id@domain]>",
        b"John Doe.<john.doe@example.com>",
        b"=?utf-8?q?=0A?=",
        b"=?iso-8859-1?B?R3L832Vu?=",
        b"=?x-unknown?Q?abc?=",
        b"text/plain; charset=",
        b"multipart/mixed; boundary=",
        b"attachment; filename*=iso-2022-jp''%1B%24B",
        b"; ; ;",
        b"\xc3\xa4\xff\xfe",
        b'"unterminated',
        b"\r\n\t",
        b"base64",
        b"quoted-printable",
    ]
)


def outcome(raw: bytes) -> EmailV1 | None:
    try:
        return parse_email(raw, "raw-bucket", "incoming/m.eml")
    except NotAnEmail:
        return None


@st.composite
def mutated(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "flip"]))
        if action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=16) | HEADER_BITS)
        elif action == "delete":
            del raw[at : at + draw(st.integers(1, 32))]
        elif at < len(raw):
            raw[at] ^= draw(st.integers(1, 255))
    return bytes(raw)


@st.composite
def header_block(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        value = b"".join(draw(st.lists(HEADER_BITS | st.binary(max_size=12), max_size=4)))
        lines.append(draw(HEADER_NAMES).encode() + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + draw(st.binary(max_size=64))


LEAF = st.builds(
    lambda kind, charset, encoding, body: (
        (
            f"Content-Type: {kind}; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
        ).encode()
        + body
    ),
    st.sampled_from(["text/plain", "text/html", "application/pdf", "message/rfc822", ""]),
    st.sampled_from(["utf-8", "iso-8859-1", "x-nope", "iso-2022-jp", ""]),
    st.sampled_from(["7bit", "base64", "quoted-printable", "8bit"]),
    st.binary(max_size=40) | st.sampled_from([b"<html><p>Hallo</p></html>", b"=C3=A4"]),
)


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda subtype, parts, closed: (
            f"Content-Type: multipart/{subtype}; boundary=b{len(parts)}\r\n\r\n".encode()
            + b"".join(f"--b{len(parts)}\r\n".encode() + p + b"\r\n" for p in parts)
            + (f"--b{len(parts)}--\r\n".encode() if closed else b"")
        ),
        st.sampled_from(["mixed", "alternative", "related"]),
        st.lists(children, max_size=3),
        st.booleans(),
    )


MIME_TREES = st.recursive(LEAF, multipart, max_leaves=8)


@BOUNDED
@given(mutated())
def test_mutated_real_shaped_messages(raw):
    outcome(raw)


@BOUNDED
@given(header_block())
def test_random_headers(raw):
    outcome(raw)


@BOUNDED
@given(MIME_TREES)
def test_random_mime_trees(tree):
    record = outcome(b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + tree)
    assert record is not None, "a tree under valid headers is an e-mail"
