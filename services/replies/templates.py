"""Reply templates, versioned: replies/templates/<template_id>/<version>.json holds every
saved version, and the newest counts. A template's body may hold the placeholders of
services/placeholders.py; one the e-mail does not provide stays in the text as `{name}`, for
the staff to complete. Retiring is a new version with `retired` set.
"""

import functools
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from services import placeholders, storage
from services.placeholders import PLACEHOLDERS
from services.records import ClassificationV1

TEMPLATES = "replies/templates/"


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

    @property
    def source(self) -> str:
        """How a suggestion, and the audit of a sent reply, name this version."""
        return f"template:{self.template_id}@{self.version}"


def save(
    bucket: str, draft: TemplateDraft, author: str, template_id: str | None = None
) -> ReplyTemplate:
    """A new template, or a new version of one (a new one under `template_id` when there is
    none); refuses unknown placeholders, and SaveConflict when this version was saved
    meanwhile."""
    check_placeholders(draft.body)
    previous = latest(bucket, template_id) if template_id else None
    template = ReplyTemplate(
        **draft.model_dump(),
        template_id=template_id or uuid.uuid4().hex[:12],
        version=previous.version + 1 if previous else 1,
        author=author,
        saved_at=datetime.now(UTC),
    )
    key = f"{TEMPLATES}{template.template_id}/{template.version:06d}.json"
    if not storage.put_if(bucket, key, template.model_dump_json().encode()):
        raise SaveConflict(f"template {template.template_id} was saved meanwhile; reload")
    return template


def check_placeholders(body: str) -> None:
    try:
        unknown = placeholders.names(body) - PLACEHOLDERS.keys()
    except ValueError as error:  # an unmatched brace
        raise UnknownPlaceholder(f"the body's braces do not pair up: {error}") from None
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise UnknownPlaceholder(
            f"unknown placeholder(s) {', '.join(sorted(unknown))} (known: {known})"
        )


def latest(bucket: str, template_id: str) -> ReplyTemplate | None:
    keys = storage.list_keys(bucket, f"{TEMPLATES}{template_id}/")
    return read(bucket, max(keys)) if keys else None


def newest_versions(bucket: str) -> list[ReplyTemplate]:
    """The newest version of every template, retired ones included."""
    newest: dict[str, str] = {}
    for key in storage.list_keys(bucket, TEMPLATES):
        template_id = key.split("/")[2]
        newest[template_id] = max(key, newest.get(template_id, ""))
    return [read(bucket, key) for key in sorted(newest.values())]


@functools.lru_cache(maxsize=4096)  # a version's key is written once, never changed
def read(bucket: str, key: str) -> ReplyTemplate:
    return ReplyTemplate.model_validate_json(storage.read(bucket, key))


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
