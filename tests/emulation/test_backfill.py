"""`postwerk backfill` (postwerk/backfill.py): an archive classified by a batch transform job
of the served model, its results in the results table and bucket like the pipeline's, marked
as a backfill; messages kept raw outside incoming/."""

import json
import mailbox
import uuid
from email.message import EmailMessage

import boto3
import pytest

from postwerk import backfill
from services import results
from tests.support.sagemaker import BUCKET, create_config, deploy_model, model_archive

RAW, RESULTS = "raw-backfill", "results-backfill"
SUBJECTS = ["my invoice is wrong", "please cancel my contract", "thanks for the great service"]


@pytest.fixture
def stack(sagemaker, trained_job) -> backfill.Stack:
    sm, _, s3 = sagemaker
    name = f"backfill-{uuid.uuid4().hex[:8]}"  # the service outlives each test's reset
    deploy_model(sm, s3, name, model_archive(trained_job / "model"))
    create_config(sm, name, name)
    sm.create_endpoint(EndpointName="backfill-endpoint", EndpointConfigName=name)
    boto3.client("dynamodb").create_table(
        TableName="results",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "message_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "message_id", "AttributeType": "S"}],
    )
    for bucket in (RAW, RESULTS):
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
    yield backfill.Stack(RAW, RESULTS, "results")
    sm.delete_endpoint(EndpointName="backfill-endpoint")


def archive(path) -> None:
    box = mailbox.mbox(path)
    for n, subject in enumerate(SUBJECTS * 2):  # the second round: the same ids again
        mail = EmailMessage()
        mail["From"] = "kunde@example.org"
        mail["Subject"] = subject
        mail["Message-ID"] = f"<old-{n % 3}@example.org>"
        mail.set_content(f"{subject}, thank you")
        box.add(mail)
    box.add(b"\x00\x01 no headers at all\n")  # not an e-mail
    box.close()


def test_an_archive_is_classified_into_the_results_marked_as_a_backfill(stack, tmp_path):
    archive(tmp_path / "2019")
    outcome = backfill.backfill(
        [tmp_path / "2019"], stack, BUCKET, "backfill-endpoint", "ml.m5.large", 0.75
    )
    assert outcome.failure is None
    assert (outcome.parsed, outcome.classified, outcome.kept_earlier) == (3, 3, 0)
    assert outcome.not_emails == 1
    stored = {r.message_id: r for r in results.scan("results")}
    assert set(stored) == {f"old-{n}@example.org" for n in range(3)}
    first = stored["old-0@example.org"]
    assert first.label in ("billing", "cancellation", "feedback") and first.input.subject
    raw = boto3.client("s3").get_object(Bucket=RAW, Key=first.input.source.key)["Body"].read()
    assert first.input.source.key.startswith("backfill/") and b"my invoice" in raw
    item = boto3.client("dynamodb").get_item(
        TableName="results", Key={"message_id": {"S": "old-0@example.org"}}
    )["Item"]
    assert item["backfill"]["S"] == outcome.job
    s3 = boto3.client("s3")
    [line_object] = s3.list_objects_v2(Bucket=RESULTS, Prefix="results/")["Contents"]
    lines = s3.get_object(Bucket=RESULTS, Key=line_object["Key"])["Body"].read().splitlines()
    assert {json.loads(line)["backfill"] for line in lines} == {outcome.job}


def test_without_an_endpoint_backfill_says_so(sagemaker):
    with pytest.raises(backfill.BackfillError, match="no endpoint nowhere"):
        backfill.served_model("nowhere")
