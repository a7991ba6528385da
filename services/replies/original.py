"""The e-mail a reply answers, read once and passed along: its raw bytes, the record ingest
makes of them (services/mail.py) and its header block as it came, each parsed on first use
and kept. Suggestions, the reply-address policy, composing and sending read this one object.
"""

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parseaddr, unquote
from functools import cached_property

from services import mail, placeholders, storage
from services.records import EmailV1, Source

ANGLE_ADDRESS = re.compile(r"(?P<name>.*?)\s*<[^<>@]*@[^<>]*>\s*", re.S)  # fullmatch


@dataclass
class Original:
    raw: bytes
    bucket: str = ""  # where it is stored: the record's source
    key: str = ""

    @classmethod
    def read(cls, source: Source) -> "Original":
        return cls(storage.read(source.bucket, source.key), source.bucket, source.key)

    @cached_property
    def email(self) -> EmailV1:
        """The record as ingest makes it (NotAnEmail for bytes ingest rejects)."""
        return mail.parse_email(self.raw, self.bucket, self.key)

    @cached_property
    def headers(self) -> Message:
        """The header block as it came (services/mail.py's lenient policy: the modern one
        raises on malformed address headers such as "From: a@")."""
        return BytesHeaderParser(policy=mail.POLICY).parsebytes(self.raw)

    def header(self, name: str) -> str:
        """A header's text as it came, raw 8-bit bytes decoded ("" when absent)."""
        return mail.raw_header(self.headers, name, set())

    @cached_property
    def sender_name(self) -> str:
        """The sender's name from From ("" when it gives none): what stands before its
        <address>, RFC 2047 words decoded only then. Outlook's "Müller, Hans", unquoted in
        8-bit or inside an encoded word, holds a comma that parseaddr takes for the end of an
        address."""
        value = self.header("From")
        if match := ANGLE_ADDRESS.fullmatch(value):
            name = match["name"].strip()
            name = unquote(name) if len(name) > 1 and name[0] == name[-1] == '"' else name
        else:  # "address (Name)"
            try:
                name = parseaddr(value)[0]
            except RecursionError:  # comments "((((" nested past the parser's recursion
                return ""
        return mail.decode_header_value(name, set()).strip()

    @cached_property
    def facts(self) -> dict[str, str]:
        """What the placeholders can be filled with, from the e-mail."""
        found = placeholders.stated(f"{self.email.subject}\n{self.email.body_text}")
        greeted = placeholders.greeting_name(self.sender_name)
        if greeted:
            found["name"] = greeted
        found["salutation"] = placeholders.salutation(greeted, self.email.language)
        # a brace in a name ("{amount}") would read as a placeholder left to complete
        return {name: value.replace("{", "").replace("}", "") for name, value in found.items()}
