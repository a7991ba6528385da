"""feedback: the staff review page and its API, behind an API Gateway HTTP API.

GET  /                                  the review page (services/review.html)
GET  /api/results?status=&q=            results to review (or reviewed, or all), searchable
GET  /api/results/{message_id}          one result with the e-mail's text
POST /api/results/{message_id}/review   {"label", "reviewer"}: confirm or correct

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

from services import clients, registry, results, routing
from services.mail import parse_email
from services.records import ClassificationV1, Review
from services.settings import FunctionSettings

PAGE = (Path(__file__).parent / "review.html").read_text(encoding="utf-8")
MAX_LISTED = 500
MAX_BODY_CHARS = 5000

logger = Logger(service="feedback")
app = APIGatewayHttpResolver(enable_validation=True)


def settings() -> FunctionSettings:
    """This invocation's settings, built once by the handler."""
    return app.context["settings"]


def require_token(app: APIGatewayHttpResolver, next_middleware) -> Response:
    """The API answers only with the review token (POSTWERK_REVIEW_TOKEN) as bearer token:
    the e-mails are customers' data. The page itself carries none and stays open; an
    empty token (the local stack) leaves the API open too."""
    token = settings().review_token
    if token and app.current_event.path.startswith("/api/"):
        given = app.current_event.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            message = "the review token is missing or wrong"
            return Response(
                401,
                "application/json",
                json.dumps({"statusCode": 401, "message": message}),
                headers={"WWW-Authenticate": "Bearer"},  # RFC 6750: how to authenticate
            )
    return next_middleware(app)


app.use(middlewares=[require_token])


@app.exception_handler(RequestValidationError)
def refuse_invalid_request(error: RequestValidationError) -> Response:
    """400 with what was wrong (Powertools answers 422 by default)."""
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )
    message = f"expected {{'label', 'reviewer'}} and valid parameters: {problems}"
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
    if item.input is None:
        raise NotFoundError(f"result '{item.message_id}' has no link to its e-mail")
    source = item.input.source
    raw = clients.client("s3").get_object(Bucket=source.bucket, Key=source.key)["Body"].read()
    email = parse_email(raw, source.bucket, source.key)
    return {"subject": email.subject, "body": email.body_text}


def store_training_row(item: ClassificationV1, entry: Review) -> None:
    row = email_text(item) | {
        "label": entry.label,
        "message_id": item.message_id,
        "reviewer": entry.reviewer,
        "reviewed_at": entry.reviewed_at.isoformat(),
    }
    clients.client("s3").put_object(
        Bucket=settings().artifacts_bucket,
        Key=f"feedback/{item.message_id}.jsonl",
        Body=(json.dumps(row, ensure_ascii=False) + "\n").encode(),
    )


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


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    app.append_context(settings=FunctionSettings())
    return app.resolve(event, context)
