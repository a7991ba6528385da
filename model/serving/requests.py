"""What /invocations accepts, and the 4xx reasons for what it does not.

application/json:       {"instances": [{"id", "subject", "body"} | {"text"} | "text", ...]}
                        or {"inputs": "text" | ["text", ...]}; optional "top_k"
application/jsonlines:  one instance per line (an object as above, or a JSON string)
"""

import json

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from model.data import email_text

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints: 6 MB
JSON_TYPES = {"application/json"}
JSONLINES_TYPES = {"application/jsonlines", "application/x-jsonlines", "application/jsonl"}


class BadRequest(Exception):
    """Turned into a 4xx with this message; never a 500."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class EmailInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = None  # echoed back as given
    text: str | None = None
    subject: str | None = None
    body: str | None = None

    @model_validator(mode="after")
    def has_content(self) -> "EmailInstance":
        if self.text is None and self.subject is None and self.body is None:
            raise ValueError("an instance needs 'text', or 'subject' and/or 'body'")
        return self

    def model_text(self) -> str:
        if self.text is not None:
            return self.text
        return email_text(self.subject or "", self.body or "")


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_invocation(body: bytes, content_type: str) -> tuple[list[EmailInstance], int | None]:
    """The instances of one request and the top_k it asked for (None: the default)."""
    if content_type in JSON_TYPES:
        return parse_json(decode_json(body, "body"))
    instances = [
        parse_instance(decode_json(line, f"line {number}"), f"line {number}")
        for number, line in enumerate(body.splitlines(), start=1)
        if line.strip()
    ]
    if not instances:
        raise BadRequest(400, "no instances: the body has no JSON lines")
    return instances, None


def decode_json(data: bytes, where: str):
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"{where} is not valid JSON: {error}") from None


def parse_json(payload) -> tuple[list[EmailInstance], int | None]:
    if not isinstance(payload, dict) or len({"instances", "inputs"} & payload.keys()) != 1:
        raise BadRequest(400, "expected a JSON object with either 'instances' or 'inputs'")
    unknown = sorted(payload.keys() - {"instances", "inputs", "top_k"})
    if unknown:
        raise BadRequest(
            400, f"unknown field(s) {unknown}: expected 'instances' or 'inputs', 'top_k'"
        )
    top_k = payload.get("top_k")
    if top_k is not None and (type(top_k) is not int or top_k < 1):
        raise BadRequest(400, "'top_k' must be a positive integer")
    key = "instances" if "instances" in payload else "inputs"
    items = payload[key]
    if key == "inputs" and isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        raise BadRequest(400, f"'{key}' must be a non-empty list")
    if key == "inputs" and not all(isinstance(item, str) for item in items):
        raise BadRequest(400, "'inputs' must be a string or a list of strings")
    return [parse_instance(item, f"{key}[{i}]") for i, item in enumerate(items)], top_k


def parse_instance(item, where: str) -> EmailInstance:
    if isinstance(item, str):
        return EmailInstance(text=item)
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
