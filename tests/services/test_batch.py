"""The partial batch response of a handler that works on the whole batch at once."""

from dataclasses import dataclass

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from services.batch import respond
from services.classify import InvocationAnswer
from tests.support.lambdas import LambdaContext, kinesis_event


@dataclass
class Done:
    error: Exception | None = None


def processor() -> BatchProcessor:
    return BatchProcessor(event_type=EventType.KinesisDataStreams)


def test_only_the_records_with_an_error_are_reported():
    event = kinesis_event(b"a", b"b", b"c")
    answer = respond(event, [Done(), Done(ValueError("no")), Done()], processor(), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "1001"}]}


def test_a_batch_where_every_record_failed_raises_so_the_mapping_retries_it():
    event = kinesis_event(b"a", b"b")
    with pytest.raises(BatchProcessingError):
        respond(event, [Done(ValueError("x")), Done(ValueError("y"))], processor(), LambdaContext())


def test_outcomes_that_do_not_match_the_records_are_a_bug_not_a_success():
    with pytest.raises(ValueError, match="1 outcomes for 2 records"):
        respond(kinesis_event(b"a", b"b"), [Done()], processor(), LambdaContext())


def test_the_endpoints_answer_is_validated_where_classify_reads_it():
    good = {"predictions": [{"id": "m1", "label": "a", "score": 0.9,
                             "top_k": [{"label": "a", "score": 0.9}]}],
            "model": {"name": "n", "version": "v"}}  # fmt: skip
    assert InvocationAnswer.model_validate(good).predictions[0].label == "a"
    with pytest.raises(ValueError, match="label"):
        InvocationAnswer.model_validate({"predictions": [{"id": "m1"}], "model": good["model"]})
