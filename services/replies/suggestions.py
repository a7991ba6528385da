"""Suggested replies for one e-mail: the live templates of its category in its language, then
what staff sent to the most similar earlier e-mails of the category (by the endpoint's
embeddings), each filled with the e-mail's facts.
"""

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from services import placeholders
from services.replies import index_store, templates
from services.replies.index import EMBEDDING_ERRORS, embed, index_text
from services.replies.original import Original

MAX_SUGGESTIONS = 3
logger = Logger(child=True)


class Suggestion(BaseModel):
    source: str  # "template:<id>@<version>" or "reply:<message id>"
    title: str
    text: str
    missing: list[str]  # placeholders left in the text for the staff to complete


def suggest(
    bucket: str, endpoint: str, original: Original, category: str
) -> tuple[list[Suggestion], str]:
    """Up to MAX_SUGGESTIONS replies in the e-mail's language (in any, when the e-mail is too
    short to tell: the staff pick): the category's live templates, then replies to similar
    e-mails. Also why there are none of the latter, when that is not simply an empty index
    ("" otherwise)."""
    language = None if original.email.language == "unknown" else original.email.language
    found = from_templates(bucket, original, category, language)
    wanted = MAX_SUGGESTIONS - len(found)
    if wanted <= 0:
        return found[:MAX_SUGGESTIONS], ""
    try:
        similar = similar_replies(bucket, endpoint, original, category, language, wanted)
    except EMBEDDING_ERRORS as error:
        logger.warning("no similar replies", reason=str(error))
        return found, f"no replies to similar e-mails: {error}"
    return found + similar, ""


def from_templates(
    bucket: str, original: Original, category: str, language: str | None
) -> list[Suggestion]:
    """The category's live templates in the language (None: in any), filled."""
    return [
        filled(original, template.body, template.language, template.source, template.title)
        for template in templates.newest_versions(bucket)
        if not template.retired
        and template.category == category
        and (not language or template.language == language)
    ]


def similar_replies(
    bucket: str, endpoint: str, original: Original, category: str, language: str | None,
    wanted: int,
) -> list[Suggestion]:  # fmt: skip
    """What staff sent to the e-mails of the category most similar to this one."""
    index, _ = index_store.for_bucket(bucket).load(category)
    if not index.entries:
        return []
    email = original.email
    vectors, model = embed(endpoint, [index_text(email.subject, email.body_text)])
    nearest = index.nearest(model, vectors[0], language, wanted, email.message_id)
    title = "Sent to a similar e-mail"
    return [
        filled(original, entry.reply, entry.language, f"reply:{entry.message_id}", title)
        for entry in nearest
    ]


def filled(original: Original, text: str, language: str, source: str, title: str) -> Suggestion:
    """The text with the e-mail's facts, greeting in the reply's language."""
    known = original.facts | {
        "salutation": placeholders.salutation(original.facts.get("name", ""), language)
    }
    text, missing = placeholders.fill(text, known)
    return Suggestion(source=source, title=title, text=text, missing=missing)
