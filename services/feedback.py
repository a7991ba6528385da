"""feedback: the staff review page and its API, behind an API Gateway HTTP API.

GET  /                                  the review page (services/review.html)
GET  /api/results?status=&q=            results to review (or reviewed, or all), searchable
GET  /api/results/{message_id}          one result with the e-mail's text
POST /api/results/{message_id}/review   {"label", "reviewer"}: confirm or correct
GET  /api/results/{message_id}/suggestions   up to three replies in the e-mail's language
                                        (and a note when replies to similar e-mails
                                        could not be looked up)
POST /api/results/{message_id}/send     {"draft_id", "text", "sender", ...}: reply, once
GET  /api/templates                     the reply templates (newest versions)
POST /api/templates                     {"category", "language", "title", "body", "author"}
PUT  /api/templates/{template_id}       the same: a new version (retire: "retired": true)

Replies, templates and sent mail live in services/replies/.

A review is stored twice, in this order: the corrected e-mail as a training row under the
artifacts bucket's `feedback/` prefix (one JSON Lines object per message id, so the latest
decision wins and a repeat overwrites), then on the result item (the new label, and an
entry in its `reviews` audit trail: who, when, old and new label; `needs_review` stays what
the model said, and a reviewed result leaves the review queue). The item is
updated only if its label is still the one the reviewer saw, so two reviewers cannot
silently overwrite each other. Repeating the same decision changes nothing. A changed label
routes the e-mail again: an event marked as a correction (services/routing.py) goes to the
new label's team.
"""

import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    NotFoundError,
    ServiceError,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from services import clients, placeholders, registry, results, routing, storage
from services.records import ClassificationV1, Review
from services.replies import policy, sending, templates
from services.replies.original import Original
from services.replies.suggestions import suggest
from services.settings import FunctionSettings

PAGE = (Path(__file__).parent / "review.html").read_text(encoding="utf-8")
MAX_LISTED = 500
MAX_BODY_CHARS = 5000

logger = Logger(service="feedback")
app = APIGatewayHttpResolver(enable_validation=True)


def settings() -> FunctionSettings:
    """This invocation's settings, built once by the handler."""
    return app.context["settings"]


def refusal(event: dict, token: str) -> dict | None:
    """The API answers only with the review token (POSTWERK_REVIEW_TOKEN) as bearer token:
    the e-mails are customers' data. The page itself carries none and stays open; an
    empty token (the local stack) leaves the API open too. Checked before routing, since
    Powertools validates a request's body before any middleware runs."""
    if not token or not event.get("rawPath", "").startswith("/api/"):
        return None
    given = {k.lower(): v for k, v in (event.get("headers") or {}).items()}.get("authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None
    message = "the review token is missing or wrong"
    return {
        "statusCode": 401,
        "headers": {
            "Content-Type": "application/json",
            "WWW-Authenticate": "Bearer",  # RFC 6750: how to authenticate
        },
        "body": json.dumps({"statusCode": 401, "message": message}),
        "isBase64Encoded": False,
    }


@app.exception_handler(RequestValidationError)
def refuse_invalid_request(error: RequestValidationError) -> Response:
    """400 with what was wrong (Powertools answers 422 by default)."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )
    message = f"expected a valid request: {problems}"
    return Response(400, "application/json", json.dumps({"statusCode": 400, "message": message}))


class ReviewRequest(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    reviewer: str = Field(min_length=1, max_length=100)


@app.get("/")
def review_page():  # no return annotation: the validator would model Response
    return Response(200, "text/html; charset=utf-8", PAGE)


@app.get("/api/results")
def list_results(
    status: Annotated[Literal["review", "reviewed", "all"], Query()] = "review",
    q: Annotated[str, Query(max_length=200)] = "",
) -> dict:
    query = q.strip().lower()
    items = [item for item in results.scan(settings().results_table) if wanted(item, status, query)]
    items.sort(key=lambda item: item.classified_at, reverse=True)
    return {
        "results": [summary(item) for item in items[:MAX_LISTED]],
        "total": len(items),
        "labels": labels(),
    }


@app.get("/api/results/<message_id>")
def get_result(message_id: str) -> dict:
    item = load(message_id)
    return summary(item) | {"body": email_text(item)["body"][:MAX_BODY_CHARS]}


@app.post("/api/results/<message_id>/review")
def review(message_id: str, request: Annotated[ReviewRequest, Body()]) -> dict:
    known = labels()
    if request.label not in known:
        raise BadRequestError(f"unknown label '{request.label}' (known: {', '.join(known)})")
    item = load(message_id)
    if item.reviews and item.label == request.label:
        return summary(item) | {"changed": False}  # the same decision again
    entry = Review(
        reviewer=request.reviewer,
        reviewed_at=datetime.now(UTC),
        previous_label=item.label,
        label=request.label,
    )
    store_training_row(item, entry)
    record_review(item, entry)
    logger.info("reviewed", message_id=message_id, changed=entry.previous_label != entry.label)
    item.label, item.reviews = entry.label, [*item.reviews, entry]
    return summary(item) | {"changed": True, "routed": reroute(item, entry)}


def reroute(item: ClassificationV1, entry: Review) -> bool:
    """Route a changed label again; False when it was not (or there is no bus)."""
    bus = settings().event_bus
    if not bus or entry.previous_label == entry.label:
        return False
    return not routing.publish(bus, settings().routing, [item], reason="correction")


def wanted(item: ClassificationV1, status: str, query: str) -> bool:
    if status == "review" and (not item.needs_review or item.reviews):
        return False
    if status == "reviewed" and not item.reviews:
        return False
    subject = item.input.subject if item.input else ""
    return not query or any(
        query in text.lower() for text in (subject, item.label, item.message_id)
    )


def summary(item: ClassificationV1) -> dict:
    return {
        "message_id": item.message_id,
        "subject": item.input.subject if item.input else "",
        "language": item.input.language if item.input else "unknown",
        "label": item.label,
        "score": item.score,
        "top_k": [candidate.model_dump() for candidate in item.top_k],
        "needs_review": item.needs_review,
        "review_threshold": item.review_threshold,
        "classified_at": item.classified_at.isoformat(),
        "reviews": [entry.model_dump(mode="json") for entry in item.reviews],
    }


def load(message_id: str) -> ClassificationV1:
    found = results.get(settings().results_table, message_id)
    if found is None:
        raise NotFoundError(f"no result for message id '{message_id}'")
    return found


def labels() -> list[str]:
    champion = registry.champion_version(settings().artifacts_bucket)
    if champion is None:
        raise ServiceError(503, "no champion model in the registry yet: nothing to label with")
    return champion.model_info.labels


def email_text(item: ClassificationV1) -> dict[str, str]:
    """Subject and body as the model reads them, from the raw e-mail."""
    email = original(item).email
    return {"subject": email.subject, "body": email.body_text}


def store_training_row(item: ClassificationV1, entry: Review) -> None:
    row = email_text(item) | {
        "label": entry.label,
        "message_id": item.message_id,
        "reviewer": entry.reviewer,
        "reviewed_at": entry.reviewed_at.isoformat(),
    }
    storage.write(settings().artifacts_bucket, f"feedback/{item.message_id}.jsonl",
                  (json.dumps(row, ensure_ascii=False) + "\n").encode())  # fmt: skip


def record_review(item: ClassificationV1, entry: Review) -> None:
    try:
        clients.table(settings().results_table).update_item(
            Key={"message_id": item.message_id},
            UpdateExpression="SET label = :new, "
            "reviews = list_append(if_not_exists(reviews, :none), :entry)",
            ConditionExpression="label = :seen",
            ExpressionAttributeValues={
                ":new": entry.label,
                ":none": [],
                ":entry": [entry.model_dump(mode="json")],
                ":seen": item.label,
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise ServiceError(409, "someone changed this result meanwhile; reload") from None
        raise


class TemplateRequest(templates.TemplateDraft):
    author: str = Field(min_length=1, max_length=100)


@app.get("/api/results/<message_id>/suggestions")
def suggestions(message_id: str) -> dict:
    item = load(message_id)
    answered = original(item)
    found, note = suggest(settings().artifacts_bucket, settings().endpoint_name, answered,
                          item.label)  # fmt: skip
    return {"language": answered.email.language, "note": note,
            "suggestions": [suggestion.model_dump() for suggestion in found]}  # fmt: skip


@app.post("/api/results/<message_id>/send")
def send_reply(message_id: str, request: Annotated[sending.SendRequest, Body()]) -> dict:
    item = load(message_id)
    desk = sending.Desk.of(settings())
    try:
        record, sent = sending.send(desk, original(item), item.label, request)
    except (policy.NoReplyAddress, sending.UnfinishedReply) as error:
        raise BadRequestError(f"cannot reply: {error}") from None
    except ClientError as error:
        raise ServiceError(
            502, f"SES refused the reply: {error.response['Error']['Code']}"
        ) from None
    logger.info("reply", message_id=message_id, draft=request.draft_id, sent_now=sent)
    return record.model_dump(mode="json") | {"sent_now": sent}


@app.get("/api/templates")
def list_templates() -> dict:
    found = templates.newest_versions(settings().artifacts_bucket)
    return {"templates": [template.model_dump(mode="json") for template in found],
            "placeholders": placeholders.PLACEHOLDERS}  # fmt: skip


@app.post("/api/templates")
def create_template(request: Annotated[TemplateRequest, Body()]):  # 201: a Response
    return Response(201, "application/json", json.dumps(save(request, None)))


@app.put("/api/templates/<template_id>")
def update_template(template_id: str, request: Annotated[TemplateRequest, Body()]) -> dict:
    if templates.latest(settings().artifacts_bucket, template_id) is None:
        raise NotFoundError(f"no template '{template_id}'")
    return save(request, template_id)


def save(request: TemplateRequest, template_id: str | None) -> dict:
    draft = templates.TemplateDraft.model_validate(request.model_dump(exclude={"author"}))
    try:
        saved = templates.save(settings().artifacts_bucket, draft, request.author, template_id)
    except templates.UnknownPlaceholder as error:
        raise BadRequestError(str(error)) from None
    except templates.SaveConflict as error:
        raise ServiceError(409, str(error)) from None
    return saved.model_dump(mode="json")


def original(item: ClassificationV1) -> Original:
    """The result's e-mail, as stored raw."""
    if item.input is None:
        raise NotFoundError(f"result '{item.message_id}' has no link to its e-mail")
    return Original.read(item.input.source)


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    current = FunctionSettings()
    denied = refusal(event, current.review_token)
    if denied:
        return denied
    app.append_context(settings=current)
    return app.resolve(event, context)
