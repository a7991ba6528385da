"""The records that flow between the functions (docs/architecture.md 3.2), and how a batch of
them is cut into chunks that fit an API's limits."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, Field

Language = Literal["de", "en", "fr", "it", "es", "nl", "pt", "pl", "tr", "ja", "zh", "unknown"]
LANGUAGES: tuple[str, ...] = get_args(Language)[:-1]  # what services.language tells apart

# What ingest cut, repaired or could not read (services/mail.py).
Flag = Literal[
    "body_truncated",  # the text the model reads was cut to its bound
    "subject_truncated",  # the subject was cut to its bound
    "header_truncated",  # a header field over its bound was cut
    "header_defect",  # a header that did not decode as declared: its raw value is kept
    "charset_unknown",  # text in a charset nobody could tell: replacement characters
    "mime_defect",  # the MIME structure was broken (missing boundary, nesting too deep)
    "parts_truncated",  # more MIME parts than ingest reads: the rest was not parsed
    "forwarded",  # the text holds a forwarded message, its forward header block dropped
]


class Attachment(BaseModel):
    filename: str | None
    content_type: str
    size: int


class Source(BaseModel):
    bucket: str
    key: str
    sha256: str


class EmailV1(BaseModel):
    """One e-mail on the Kinesis stream; the partition key is its message id."""

    schema_: Literal["email.v1"] = Field("email.v1", alias="schema")
    message_id: str
    received_at: datetime
    sender: str
    recipients: list[str]
    subject: str
    body_text: str  # quoted history, forward headers, signature, disclaimer removed; the model's
    body_truncated: bool = False
    language: Language
    attachments: list[Attachment]
    source: Source
    flags: list[Flag] = []  # sorted; absent in records written before flags existed

    model_config = {"populate_by_name": True}

    def model_text(self) -> dict[str, str]:
        """The instance the serving container takes."""
        return {"id": self.message_id, "subject": self.subject, "body": self.body_text}


class Label(BaseModel):
    label: str
    score: float


class ModelIdentity(BaseModel):
    name: str
    version: str


class InputSummary(BaseModel):
    """What review and monitoring need of the e-mail: no body, no addresses."""

    subject: str
    language: str
    length: int  # characters of the text the model read
    source: Source  # the raw e-mail, for the review page and for training on corrections


class Review(BaseModel):
    """One staff decision on a result: the audit trail of corrections."""

    reviewer: str
    reviewed_at: datetime
    previous_label: str
    label: str


class ClassificationV1(BaseModel):
    """One result: a DynamoDB item keyed by message id, and a line in the results bucket.

    `input` and `reviews` extend the design's first fields (optional, so v1 readers still parse):
    the review page, training on corrections and the monitor need them."""

    schema_: Literal["classification.v1"] = Field("classification.v1", alias="schema")
    message_id: str
    label: str
    score: float
    top_k: list[Label]
    needs_review: bool
    model: ModelIdentity
    classified_at: datetime
    review_threshold: float | None = None  # what `score` was held against (absent: older)
    input: InputSummary | None = None
    reviews: list[Review] = []  # newest last; `label` is the latest reviewer's choice
    backfill: str | None = None  # the transform job that classified an archived e-mail

    model_config = {"populate_by_name": True}

    @classmethod
    def from_prediction(
        cls, email: EmailV1, prediction: "Prediction", model: ModelIdentity, fallback: float
    ) -> "ClassificationV1":
        """The e-mail's result: the model's answer, for review when it scores below its
        label's threshold from the endpoint, or below `fallback` for a model without
        per-label thresholds (classify and `postwerk backfill` make them alike)."""
        threshold = fallback if prediction.review_threshold is None else prediction.review_threshold
        return cls(
            message_id=email.message_id,
            label=prediction.label,
            score=prediction.score,
            top_k=prediction.top_k,
            needs_review=prediction.score < threshold,
            model=model,
            classified_at=datetime.now(UTC),
            review_threshold=threshold,
            input=InputSummary(
                subject=email.subject,
                language=email.language,
                length=len(email.body_text),
                source=email.source,
            ),
        )


class Prediction(BaseModel):
    """One e-mail's answer in InvokeEndpoint's response (the serving container's contract)."""

    id: str | int  # the instance's id, echoed as given
    label: str
    score: float
    top_k: list[Label]
    review_threshold: float | None = None  # the label's, from calibration.json (newer models)
    embedding: list[float] | None = None  # when the request asked ("embed": true)


class InvocationAnswer(BaseModel):
    """The serving container's answer to /invocations, validated where classify reads it."""

    predictions: list[Prediction]
    model: ModelIdentity


Item = TypeVar("Item")


def chunked(
    items: list[Item], size: Callable[[Item], int], max_bytes: int, max_items: int | None = None
) -> list[list[Item]]:
    """Consecutive chunks under an API's limits: at most max_bytes (as size() counts them)
    and max_items per chunk; an item over max_bytes alone gets a chunk of its own."""
    result: list[list[Item]] = []
    current: list[Item] = []
    total = 0
    for item in items:
        item_size = size(item)
        full = max_items is not None and len(current) == max_items
        if current and (full or total + item_size > max_bytes):
            result.append(current)
            current, total = [], 0
        current.append(item)
        total += item_size
    return [*result, current] if current else result
