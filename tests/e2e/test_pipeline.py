"""The whole pipeline on the embedded backend: stack deployed, a tiny model trained and
served through the local SageMaker service, e-mails uploaded, results checked.

Order matters within this module (one deployed pipeline for all three tests): varied mail,
then the endpoint fault, then the dead-letter path.
"""

import contextlib
import json
import sys
import time
from email.message import EmailMessage

import boto3
import psutil
import pytest

from emulation.esm import MappingRunner
from postwerk import deploy, sagemaker
from postwerk.settings import CliSettings
from services.mail import NotAnEmail, parse_email
from tests.conftest import tiny_hyperparameters
from tests.emulation.conftest import FAST_WAITER, training_request
from tests.jobs import TOPICS

ENDPOINT = "postwerk-emails"


@pytest.fixture(scope="module")
def pipeline(ministack, sagemaker_service, tiny_bert, tmp_path_factory):
    service, url, _ = sagemaker_service
    with pytest.MonkeyPatch.context() as env:
        ministack.reset()
        for name, value in ministack.client_environment().items():
            env.setenv(name, value)
        env.setenv("AWS_ENDPOINT_URL_SAGEMAKER", url)
        env.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
        env.setenv("POSTWERK_BUCKET", "postwerk-e2e")
        settings = CliSettings()
        build_dir = deploy.REPO_ROOT / ".postwerk" / "build"
        build_dir.mkdir(parents=True, exist_ok=True)
        archive = deploy.build_package(build_dir, python_version=None)
        outputs = deploy.deploy_stack(
            "postwerk-e2e",
            {
                "CodeBucket": settings.bucket,
                "CodeKey": deploy.upload_package(archive, settings.bucket),
                "EndpointName": ENDPOINT,
                "EmulatorMapping": "true",
                "LambdaRuntime": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "SageMakerRuntimeEndpointUrl": url,
                "ReviewThreshold": "0.5",
            },
        )
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        job = f"e2e-{int(time.time())}"
        s3.create_bucket(
            Bucket="postwerk-tests",
            CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
        )
        sm.create_training_job(**training_request(job, s3, tiny_hyperparameters(tiny_bert)))
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=job, WaiterConfig=FAST_WAITER
        )
        endpoint = sagemaker.deploy(settings, job, ENDPOINT, instances=1, must_exist=False)
        assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
        runner = MappingRunner(tmp_path_factory.mktemp("esm")).start()
        yield outputs | {"service_pid": service.pid}
        runner.stop()
        sm.delete_endpoint(EndpointName=ENDPOINT)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=ENDPOINT, WaiterConfig=FAST_WAITER)


def varied_emails() -> dict[str, bytes]:
    """German and English, plain, multipart, HTML-only, odd charsets, attachments."""
    mails = {}
    texts = [(topic, subject, body) for topic, emails in TOPICS.items() for subject, body in emails]
    for i, (_, subject, body) in enumerate(texts[:24]):
        message = EmailMessage()
        message["From"] = f"Kunde {i} <kunde{i}@example.de>"
        message["To"] = "service@example.com"
        message["Subject"] = subject
        message["Message-ID"] = f"<e2e-{i}@example.de>"
        style = i % 4
        if style == 0:
            message.set_content(body)
        elif style == 1:
            message.set_content(body)
            message.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
        elif style == 2:
            message.set_content(f"<html><body><p>{body}</p></body></html>", subtype="html")
        else:
            message.set_content(body, charset="iso-8859-1", cte="quoted-printable")
            message.add_attachment(
                b"%PDF-1.7 scan", maintype="application", subtype="pdf", filename="scan.pdf"
            )
        mails[f"incoming/e2e-{i}.eml"] = message.as_bytes()
    mails["incoming/not-an-email.png"] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    return mails


def upload(outputs: dict, mails: dict[str, bytes]) -> None:
    s3 = boto3.client("s3")
    for key, raw in mails.items():
        s3.put_object(Bucket=outputs["RawBucket"], Key=key, Body=raw)


def results() -> list[dict]:
    table = boto3.resource("dynamodb").Table("postwerk-results")
    return table.scan(ConsistentRead=True)["Items"]


def wait_for(condition, timeout: float = 180):
    """condition()'s first truthy value, polled every half second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError("timed out waiting for the pipeline")


def results_when(enough) -> list[dict]:
    return wait_for(lambda: (items := results()) and enough(items) and items)


def expected_ids(mails: dict[str, bytes]) -> set[str]:
    ids = set()
    for key, raw in mails.items():
        with contextlib.suppress(NotAnEmail):
            ids.add(parse_email(raw, "b", key).message_id)
    return ids


def test_every_email_gets_one_result_or_an_explained_rejection(pipeline):
    mails = varied_emails()
    upload(pipeline, mails)
    ids = expected_ids(mails)
    stored = results_when(lambda items: {i["message_id"] for i in items} >= ids)
    assert sorted(i["message_id"] for i in stored) == sorted(ids), "one result per e-mail"
    s3 = boto3.client("s3")
    reason = s3.get_object(
        Bucket=pipeline["RawBucket"], Key="rejected/incoming/not-an-email.png.reason.json"
    )
    assert "binary" in json.loads(reason["Body"].read())["reason"]

    runtime = boto3.client("sagemaker-runtime")
    by_id = {item["message_id"]: item for item in stored}
    for key, raw in mails.items():
        if key.endswith(".png"):
            continue
        email = parse_email(raw, "b", key)
        direct = json.loads(
            runtime.invoke_endpoint(
                EndpointName=ENDPOINT,
                ContentType="application/json",
                Body=json.dumps({"instances": [email.model_text()]}),
            )["Body"].read()
        )
        top = direct["predictions"][0]["top_k"]
        if top[0]["score"] - top[1]["score"] > 0.01:  # a near tie may flip with batching
            assert by_id[email.message_id]["label"] == top[0]["label"], key
    lines = [
        json.loads(line)
        for obj in s3.list_objects_v2(Bucket=pipeline["ResultsBucket"])["Contents"]
        for line in s3.get_object(Bucket=pipeline["ResultsBucket"], Key=obj["Key"])["Body"]
        .read()
        .splitlines()
    ]
    assert sorted(line["message_id"] for line in lines) == sorted(ids)


def test_an_endpoint_that_dies_mid_stream_loses_nothing(pipeline):
    before = len(results())
    mails = {
        key.replace("e2e-", "fault-"): raw.replace(b"<e2e-", b"<fault-")
        for key, raw in varied_emails().items()
        if key.endswith(".eml")
    }
    upload(pipeline, mails)
    for child in psutil.Process(pipeline["service_pid"]).children():
        if "serve" in child.cmdline():
            child.kill()  # every replica: InvokeEndpoint fails until the supervisor restarts it
    ids = expected_ids(mails)
    stored = results_when(lambda items: len(items) >= before + len(ids))
    fault_ids = [i["message_id"] for i in stored if i["message_id"].startswith("fault-")]
    assert sorted(fault_ids) == sorted(ids), "none lost, none twice"
    time.sleep(2)
    assert len(results()) == before + len(ids)


def test_a_record_that_keeps_failing_goes_to_the_dead_letter_queue(pipeline):
    lambda_ = boto3.client("lambda")
    [mapping] = lambda_.list_event_source_mappings(FunctionName="postwerk-classify")[
        "EventSourceMappings"
    ]
    lambda_.update_event_source_mapping(UUID=mapping["UUID"], MaximumRetryAttempts=1)
    time.sleep(1.5)  # the runner rereads mappings every second
    boto3.client("kinesis").put_record(
        StreamName="postwerk-emails", Data=b"{not json", PartitionKey="poison"
    )
    sqs = boto3.client("sqs")

    def dead_letter():
        answer = sqs.receive_message(QueueUrl=pipeline["DeadLetterQueueUrl"])
        return answer.get("Messages")

    [message] = wait_for(dead_letter, timeout=60)
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["KinesisBatchInfo"]["batchSize"] == 1  # where the record is in the stream
