"""classification.v1 from the endpoint's answer: which threshold decides review."""

from datetime import UTC, datetime

from services.records import ClassificationV1, EmailV1, ModelIdentity, Prediction, Source

EMAIL = EmailV1(
    message_id="m1", received_at=datetime.now(UTC), sender="a@example.com", recipients=[],
    subject="Rechnung", body_text="Die Rechnung ist falsch.", language="de", attachments=[],
    source=Source(bucket="raw", key="incoming/m1.eml", sha256="0" * 64),
)  # fmt: skip
MODEL = ModelIdentity(name="n", version="v")


def answer(score: float, **extra) -> Prediction:
    return Prediction.model_validate(
        {"id": "m1", "label": "billing", "score": score, "top_k": [], **extra}
    )


def test_the_labels_threshold_from_the_endpoint_decides_review():
    sure = ClassificationV1.from_prediction(EMAIL, answer(0.6, review_threshold=0.5), MODEL, 0.9)
    assert not sure.needs_review and sure.review_threshold == 0.5
    unsure = ClassificationV1.from_prediction(EMAIL, answer(0.6, review_threshold=0.7), MODEL, 0.1)
    assert unsure.needs_review and unsure.review_threshold == 0.7


def test_an_answer_without_one_falls_back_to_the_setting():
    """A model trained before calibration.json: its answers carry no threshold."""
    result = ClassificationV1.from_prediction(EMAIL, answer(0.6), MODEL, 0.75)
    assert result.needs_review and result.review_threshold == 0.75
    assert not ClassificationV1.from_prediction(EMAIL, answer(0.8), MODEL, 0.75).needs_review


def test_results_stored_before_the_field_still_parse():
    stored = ClassificationV1.from_prediction(EMAIL, answer(0.8), MODEL, 0.75)
    document = stored.model_dump(mode="json", by_alias=True)
    del document["review_threshold"]
    assert ClassificationV1.model_validate(document).review_threshold is None
