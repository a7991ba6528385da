"""What /invocations accepts, and the 4xx reasons for what it does not.

application/json:       {"instances": [{"id", "subject", "body"} | {"text"} | "text", ...]}
                        or {"inputs": "text" | ["text", ...]}; optional "top_k", and
                        "embed": true for each text's embedding (see engine.py) too
application/jsonlines:  one instance per line (an object as above, or a JSON string)

Both in UTF-8, without a Content-Encoding; `id` is a string or an integer, echoed as given.
"""

import json
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from model.data import email_text

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints: 6 MB
# In the order answers prefer them when the Accept header allows several equally.
ANSWER_TYPES = [
    "application/json",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/jsonl",
]
JSON_TYPES = set(ANSWER_TYPES[:1])
JSONLINES_TYPES = set(ANSWER_TYPES[1:])
SUPPORTED_TYPES = JSON_TYPES | JSONLINES_TYPES


class BadRequest(Exception):
    """Turned into a 4xx with this message; never a 500."""

    def __init__(self, status: int, message: str):
        # The message may quote the request, lone surrogates included: keep it encodable.
        super().__init__(message.encode("utf-8", "backslashreplace").decode())
        self.status = status


class EmailInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None  # echoed back as given
    text: str | None = None
    subject: str | None = None
    body: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def string_or_integer(cls, value):
        if value is not None and type(value) not in (str, int):  # no bool, no float
            raise ValueError("must be a string or an integer")
        return value

    @field_validator("id", "text", "subject", "body")
    @classmethod
    def valid_unicode(cls, value):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not valid Unicode (a lone surrogate)") from None
        return value

    @model_validator(mode="after")
    def has_content(self) -> "EmailInstance":
        if self.text is None and self.subject is None and self.body is None:
            raise ValueError("an instance needs 'text', or 'subject' and/or 'body'")
        return self

    def model_text(self) -> str:
        if self.text is not None:
            return self.text
        return email_text(self.subject or "", self.body or "")


def parse_media_type(header: str) -> tuple[str, dict[str, str]]:
    """'Application/JSON; charset="utf-8"' -> ('application/json', {'charset': 'utf-8'})."""
    kind, *parameters = header.split(";")
    pairs = (parameter.partition("=") for parameter in parameters)
    return kind.strip().lower(), {
        name.strip().lower(): value.strip().strip('"') for name, _, value in pairs
    }


def request_type(content_type: str | None, content_encoding: str | None) -> str:
    """The request's media type, or a 415 for what /invocations cannot read."""
    kind, parameters = parse_media_type(content_type or "")
    if kind not in SUPPORTED_TYPES:
        supported = ", ".join(sorted(SUPPORTED_TYPES))
        raise BadRequest(415, f"unsupported content type '{kind}' ({supported})")
    charset = parameters.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise BadRequest(415, f"unsupported charset '{charset}' (the body must be UTF-8)")
    coding = (content_encoding or "identity").strip().lower()
    if coding != "identity":
        raise BadRequest(415, f"unsupported content encoding '{coding}' (send the body as is)")
    return kind


def response_type(accept: str | None, content_type: str) -> str:
    """The type the Accept header prefers among those we speak (RFC 9110 12.5.1); ties,
    like a missing header, go to the request's own type."""
    if not (accept or "").strip():
        return content_type
    ranges = [parse_media_type(item) for item in accept.split(",") if item.strip()]
    offers = [content_type, *(kind for kind in ANSWER_TYPES if kind != content_type)]
    quality = {offer: preference(offer, ranges) for offer in offers}
    best = max(offers, key=quality.get)  # max keeps the first of equals: the request's type
    if quality[best] <= 0:
        raise BadRequest(406, f"cannot answer '{accept}' (application/json or jsonlines)")
    return best


def preference(offer: str, ranges: list[tuple[str, dict[str, str]]]) -> float:
    """The q-value of the most specific range that matches `offer` (0 when none does)."""
    kind = offer.split("/")[0]
    for wanted in (offer, f"{kind}/*", "*/*"):
        for media_range, parameters in ranges:
            if media_range == wanted:
                return quality_value(parameters.get("q", "1"))
    return 0.0


def quality_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(400, f"Accept has an invalid q-value '{text}'") from None
    if not 0 <= value <= 1:
        raise BadRequest(400, f"Accept has a q-value outside 0..1: '{text}'")
    return value


class Invocation(NamedTuple):
    instances: list[EmailInstance]
    top_k: int | None  # None: the default
    embed: bool = False  # answer with each text's embedding too


def parse_invocation(body: bytes, content_type: str, max_instances: int) -> Invocation:
    """The instances of one request and what it asked for."""
    if content_type in JSON_TYPES:
        return parse_json(decode_json(body, "body"), max_instances)
    lines = [(number, line) for number, line in enumerate(body.splitlines(), 1) if line.strip()]
    if not lines:
        raise BadRequest(400, "no instances: the body has no JSON lines")
    check_count(len(lines), max_instances)
    instances = [
        parse_instance(decode_json(line, f"line {number}"), f"line {number}")
        for number, line in lines
    ]
    return Invocation(instances, None)


def decode_json(data: bytes, where: str):
    try:
        return json.loads(data)
    except RecursionError:
        raise BadRequest(400, f"{where} is nested too deeply") from None
    except ValueError as error:  # syntax, encoding, or an integer of over 4,300 digits
        raise BadRequest(400, f"{where} is not valid JSON: {error}") from None


def check_count(count: int, max_instances: int) -> None:
    if count > max_instances:
        raise BadRequest(
            413,
            f"{count} instances in one request: at most {max_instances} "
            "(POSTWERK_MAX_INSTANCES); split the request",
        )


def parse_json(payload, max_instances: int) -> Invocation:
    if not isinstance(payload, dict) or len({"instances", "inputs"} & payload.keys()) != 1:
        raise BadRequest(400, "expected a JSON object with either 'instances' or 'inputs'")
    unknown = sorted(payload.keys() - {"instances", "inputs", "top_k", "embed"})
    if unknown:
        raise BadRequest(
            400, f"unknown field(s) {unknown}: expected 'instances' or 'inputs', 'top_k', 'embed'"
        )
    top_k = payload.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 1):
        raise BadRequest(400, "'top_k' must be a positive integer")
    embed = payload.get("embed", False)
    if type(embed) is not bool:
        raise BadRequest(400, "'embed' must be true or false")
    key = "instances" if "instances" in payload else "inputs"
    items = payload[key]
    if key == "inputs" and isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        raise BadRequest(400, f"'{key}' must be a non-empty list")
    if key == "inputs" and not all(isinstance(item, str) for item in items):
        raise BadRequest(400, "'inputs' must be a string or a list of strings")
    check_count(len(items), max_instances)
    instances = [parse_instance(item, f"{key}[{i}]") for i, item in enumerate(items)]
    return Invocation(instances, top_k, embed)


def parse_instance(item, where: str) -> EmailInstance:
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict):
        raise BadRequest(400, f"{where}: expected an object or a string")
    try:
        return EmailInstance.model_validate(item)
    except ValidationError as error:
        raise BadRequest(400, f"{where}: {describe(error)}") from None


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
