"""The whole pipeline on the embedded backend, brought up as a user does: `postwerk up
--detach` starts the local AWS, deploys the stack, trains a tiny model on the bundled
samples through a SageMaker training job, serves it and sends the sample e-mails; the tests
then feed it more mail and faults; `postwerk down` must leave no process and no port.

The tests share the module's one `up` (tests/support/stack.py); each sets up what it needs
and leaves nothing a later test would have to know about, so any one runs alone and in any
order.
"""

import contextlib
import json
import os
import pty
import re
import select
import signal
import smtplib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import boto3
import httpx
import psutil
import pytest

from emulation.processes import HOST
from postwerk import pipeline as operations
from postwerk.local import port_in_use
from postwerk.samples import DEMO
from services import registry
from services.mail import NotAnEmail, parse_email
from services.settings import RoutingTable
from tests.support.aws import drain
from tests.support.browser import LOW_CONTRAST_TEXTS, chromium
from tests.support.jobs import TOPICS
from tests.support.stack import POSTWERK, postwerk, stack_outputs, stack_parameters

ENDPOINT = "postwerk-emails"


def test_up_trains_serves_and_classifies_the_samples(local_stack, pipeline):
    up = local_stack.up
    assert "backend: embedded" in up.stdout
    assert "no model yet: training postwerk-default-" in up.stdout
    assert "Training" in up.stdout and "epoch=4;" in up.stdout, "the job's progress is shown"
    assert f"sent {DEMO['count']} sample e-mails" in up.stdout
    assert "review page: http://127.0.0.1:" in up.stdout and "/_aws/execute-api/" in up.stdout
    assert "pending" not in up.stdout and "rejected" not in up.stdout
    stored = {item["message_id"] for item in local_stack.results_after_up}
    assert stored == {f"sample-{DEMO['seed']}-{n:04d}@kunden.example" for n in range(42)}
    assert "****@kunden.example" in up.stdout and "schmidt@" not in up.stdout, "redacted"


def test_the_printed_eval_line_works_as_printed(local_stack, pipeline):
    environment = local_stack.environment
    line = re.search(r'eval "\$\((.+?) env\)"', local_stack.up.stdout).group(0)
    script = f'{line} && echo "$AWS_ENDPOINT_URL"'
    shell = subprocess.run(
        ["bash", "-c", script], env=environment, capture_output=True, text=True, check=False
    )
    assert shell.stdout.strip() == f"http://127.0.0.1:{environment['POSTWERK_AWS_PORT']}"


def test_results_shows_the_newest_first_with_sender_and_subject(local_stack, pipeline):
    shown = postwerk(local_stack.with_local_aws(), "results", "--limit", "5")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "the newest 5 of" in shown.stdout
    newest = operations.results(pipeline["ResultsTable"])[::-1][:5]
    rows = [line for line in shown.stdout.splitlines() if "****@" in line]
    assert len(rows) == 5
    assert [item["classified_at"][:19].replace("T", " ") in row
            for item, row in zip(newest, rows, strict=True)] == [True] * 5  # fmt: skip
    assert [redacted_sender(item) in row
            for item, row in zip(newest, rows, strict=True)] == [True] * 5  # fmt: skip


def redacted_sender(result: dict) -> str:
    """The result's sender as the tables show it: its first letter and its domain."""
    source = result["input"]["source"]
    raw = boto3.client("s3").get_object(Bucket=source["bucket"], Key=source["key"])["Body"]
    sender = parse_email(raw.read(), source["bucket"], source["key"]).sender
    local, _, domain = sender.partition("@")
    return f"{local[:1]}****@{domain}"


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
    before = {item["message_id"] for item in results()}
    mails = varied_emails()
    upload(pipeline, mails)
    ids = expected_ids(mails)
    stored = results_when(lambda items: {i["message_id"] for i in items} >= ids)
    e2e = sorted(i["message_id"] for i in stored if i["message_id"] not in before)
    assert e2e == sorted(ids), "one result per e-mail"
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
        near_tie = top[0]["score"] - top[1]["score"] <= 0.01  # may flip with batching
        assert by_id[email.message_id]["label"] == top[0]["label"] or near_tie, key
    lines = result_lines(pipeline["ResultsBucket"])
    assert sorted(line["message_id"] for line in lines if line["message_id"] in ids) == sorted(ids)


def result_lines(bucket: str) -> list[dict]:
    """Every JSON Lines result in the results bucket."""
    s3 = boto3.client("s3")
    return [
        json.loads(line)
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().splitlines()
    ]


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


@pytest.fixture
def one_retry(pipeline):
    """The classify mapping retries a failing batch once, and as often as before afterwards
    (an endpoint fault would otherwise lose records)."""
    lambda_ = boto3.client("lambda")
    [mapping] = lambda_.list_event_source_mappings(FunctionName="postwerk-classify")[
        "EventSourceMappings"
    ]
    lambda_.update_event_source_mapping(UUID=mapping["UUID"], MaximumRetryAttempts=1)
    time.sleep(1.5)  # the runner rereads mappings every second
    yield
    retries = mapping.get("MaximumRetryAttempts", -1)  # -1: until the records expire
    lambda_.update_event_source_mapping(UUID=mapping["UUID"], MaximumRetryAttempts=retries)
    time.sleep(1.5)


def test_a_record_that_keeps_failing_goes_to_the_dead_letter_queue(pipeline, one_retry):
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


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def test_the_review_page_confirms_and_corrects_by_keyboard(pipeline, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(operations.review_url(pipeline))
    page.fill("#reviewer", "Anna")
    page.locator("#reviewer").dispatch_event("change")
    # Each list the page loads ends in select(0): the keys below wait for both lists, the
    # first (to review) and then all, whether the function is cold (its first call) or warm
    # (a test before called it). A list sets the count once it is shown.
    count = page.locator("#count")
    expect(count).not_to_be_empty(timeout=30_000)  # a cold start takes seconds
    count.evaluate("count => { count.textContent = ''; }")
    page.select_option("#filter", "all")
    expect(count).not_to_be_empty(timeout=30_000)
    rows = page.locator("#rows tr")
    expect(rows.nth(2)).to_be_visible()
    page.locator("h1").click()  # keyboard focus on the page, not in a field

    page.keyboard.press("ArrowDown")
    expect(rows.nth(1)).to_have_class("selected")
    confirmed = rows.nth(1).get_attribute("data-id")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("confirmed", timeout=30_000)  # cold start

    page.keyboard.press("ArrowDown")
    expect(rows.nth(2)).to_have_class("selected")
    corrected = rows.nth(2).get_attribute("data-id")
    predicted = rows.nth(2).locator("td").nth(1).inner_text()
    expect(page.locator("#choices button").first).to_be_visible()
    labels = [b.get_attribute("data-label") for b in page.locator("#choices button").all()]
    other = next(i for i, label in enumerate(labels) if label != predicted)
    page.keyboard.press(str(other + 1))
    expect(page.locator("#status")).to_contain_text(f"corrected {predicted}", timeout=30_000)
    assert page.evaluate(LOW_CONTRAST_TEXTS) == [], "WCAG AA contrast: list, detail, hints"

    table = boto3.resource("dynamodb").Table(pipeline["ResultsTable"])
    first = table.get_item(Key={"message_id": confirmed})["Item"]
    assert [r["reviewer"] for r in first["reviews"]] == ["Anna"]
    second = table.get_item(Key={"message_id": corrected})["Item"]
    assert second["label"] == labels[other] and second["reviews"][0]["previous_label"] == predicted
    code_bucket = stack_parameters()["CodeBucket"]
    row = boto3.client("s3").get_object(Bucket=code_bucket, Key=f"feedback/{corrected}.jsonl")
    assert json.loads(row["Body"].read())["label"] == labels[other]

    page.route(
        "**/api/results?**",
        lambda route: route.fulfill(
            status=500, content_type="application/json", body='{"message":"table unreachable"}'
        ),
    )
    page.select_option("#filter", "review")
    expect(page.locator("#alert")).to_contain_text("table unreachable")
    assert page.evaluate(LOW_CONTRAST_TEXTS) == [], "WCAG AA contrast: the error banner"


def test_the_review_api_refuses_unknown_labels_and_ids(pipeline):
    url = operations.review_url(pipeline)
    some_id = operations.results(pipeline["ResultsTable"])[0]["message_id"]
    wrong_label = httpx.post(
        f"{url}api/results/{some_id}/review", json={"label": "spam", "reviewer": "x"}, timeout=30
    )
    assert wrong_label.status_code == 400 and "unknown label 'spam'" in wrong_label.text
    unknown = httpx.get(f"{url}api/results/no-such-id", timeout=30)
    assert unknown.status_code == 404


def test_the_samples_get_suggested_replies_from_the_example_templates(local_stack, pipeline):
    assert "example reply templates" in local_stack.up.stdout
    url = operations.review_url(pipeline)
    stored = [item for item in operations.results(pipeline["ResultsTable"])
              if item["label"] != "complaint" and not item["reviews"]]  # fmt: skip
    for language in ("de", "en"):
        item = next(item for item in stored if item["input"]["language"] == language)
        answer = httpx.get(f"{url}api/results/{item['message_id']}/suggestions", timeout=30)
        assert answer.status_code == 200
        sources = [suggestion["source"] for suggestion in answer.json()["suggestions"]]
        assert f"template:example-{item['label']}-{language}@1" in sources


def correct(pipeline: dict, item: dict) -> None:
    """A reviewer's correction through the review API: another label than the model's."""
    url = operations.review_url(pipeline)
    labels = httpx.get(f"{url}api/results", timeout=30).json()["labels"]
    wrong = next(label for label in labels if label != item["label"])
    answer = httpx.post(
        f"{url}api/results/{item['message_id']}/review",
        json={"label": wrong, "reviewer": "e2e"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_every_result_reaches_its_teams_queue_once_and_a_correction_routes_again(pipeline):
    correct(pipeline, operations.results(pipeline["ResultsTable"])[0])
    table = RoutingTable.model_validate_json(stack_parameters()["RoutingTable"])
    sqs = boto3.client("sqs")
    queues = {name: sqs.get_queue_url(QueueName=f"postwerk-team-{name}")["QueueUrl"]
              for name in sorted(set(table.teams.values()) | {table.default})}  # fmt: skip
    arrived = {team: Counter((e["detail"]["message_id"], e["detail"]["routing"]["reason"])
                             for e in drain(url)) for team, url in queues.items()}  # fmt: skip
    stored = operations.results(pipeline["ResultsTable"])
    expected = {team: Counter() for team in queues}
    for item in stored:
        labels = [review["previous_label"] for review in item["reviews"][:1]] or [item["label"]]
        expected[table.team(labels[0])][(item["message_id"], "classified")] += 1
        for review in item["reviews"]:
            if review["label"] != review["previous_label"]:
                expected[table.team(review["label"])][(item["message_id"], "correction")] += 1
    assert arrived == expected
    assert sum(len(events) for events in arrived.values()) >= len(stored) >= DEMO["count"]
    assert any(reason == "correction" for events in arrived.values() for _, reason in events)


def test_staff_reply_from_the_page_in_the_emails_language_once_threaded(local_stack, pipeline,
                                                                       browser):  # fmt: skip
    from playwright.sync_api import expect

    url = operations.review_url(pipeline)
    listed = httpx.get(f"{url}api/templates", timeout=30).json()["templates"]
    for example in [t for t in listed if t["template_id"].startswith("example-complaint-")]:
        retired = {**example, "retired": True, "author": "e2e"}  # staff replace the examples
        assert httpx.put(f"{url}api/templates/{example['template_id']}", json=retired,
                         timeout=30).status_code == 200  # fmt: skip
    for language, body in (("de", "{salutation}\n\nes tut uns leid.\n\nViele Grüße"),
                           ("en", "{salutation}\n\nwe are sorry.\n\nKind regards")):  # fmt: skip
        template = {"category": "complaint", "language": language, "title": f"Sorry {language}",
                    "body": body, "author": "e2e"}  # fmt: skip
        assert httpx.post(f"{url}api/templates", json=template, timeout=30).status_code == 201
    complaints = [item for item in operations.results(pipeline["ResultsTable"])
                  if item["label"] == "complaint" and not item["reviews"]]  # fmt: skip
    german, english = (next(item for item in complaints if item["input"]["language"] == language)
                       for language in ("de", "en"))  # fmt: skip
    page = browser.new_page()
    page.goto(url)
    page.fill("#reviewer", "Lena")
    page.locator("#reviewer").dispatch_event("change")
    page.select_option("#filter", "all")

    def open_reply(item: dict) -> None:
        page.locator("h1").click()
        page.keyboard.press("/")
        page.keyboard.press("Control+A")  # the search before
        page.keyboard.type(item["message_id"])
        page.keyboard.press("Enter")
        expect(page.locator("#rows tr")).to_have_count(1, timeout=30_000)
        expect(page.locator("#detail")).to_contain_text(item["input"]["subject"])
        page.locator("h1").click()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("r")

    open_reply(english)
    expect(page.locator("#suggestions button")).to_have_text(["Use: Sorry en"], timeout=30_000)
    open_reply(german)
    expect(page.locator("#suggestions button")).to_have_text(["Use: Sorry de"], timeout=30_000)
    page.keyboard.press("Enter")  # the focused suggestion into the draft
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nPS: Ein Techniker kommt morgen.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("sent.", timeout=30_000)
    page.keyboard.press("Enter")  # a second click
    expect(page.locator("#status")).to_contain_text("already sent", timeout=30_000)

    outbox = postwerk(local_stack.with_local_aws(), "outbox", "--raw")
    assert outbox.returncode == 0, outbox.stdout + outbox.stderr
    [message] = re.findall(r"^In-Reply-To: (.+)$", outbox.stdout, re.M)
    assert message.strip() == f"<{german['message_id']}>"
    assert "Subject: Re: " in outbox.stdout and "Ein Techniker kommt morgen." in outbox.stdout
    assert outbox.stdout.count("From: support@postwerk.localhost") == 1


def test_corrections_feed_a_retraining_that_the_champion_rule_promotes_or_rejects(
    local_stack, pipeline
):
    """The life cycle with traffic flowing: corrections through the API, the monitor's rule
    fires, a retraining job runs on data that includes them, the challenger meets the
    champion on the same held-out set, and the decision follows the margin."""
    environment = local_stack.environment
    aws = local_stack.with_local_aws()
    corrected = []
    for item in operations.results(pipeline["ResultsTable"])[:3]:
        correct(pipeline, item)
        corrected.append(item["message_id"])

    failures, stop = [], threading.Event()

    def traffic():
        runtime = boto3.client("sagemaker-runtime")
        while not stop.is_set():
            try:
                runtime.invoke_endpoint(
                    EndpointName=ENDPOINT, ContentType="application/json",
                    Body=json.dumps({"inputs": "Bitte ändern Sie meine Adresse"}),
                )  # fmt: skip
            except Exception as error:
                failures.append(error)
            time.sleep(0.05)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    rules = ["--min-reviewed", "2", "--min-accuracy", "0.99", "--promotion-margin", "0"]
    fired = postwerk(
        aws, "monitor", *rules, "--plots", str(Path(environment["POSTWERK_STATE_DIR"]))
    )
    assert fired.returncode == 0, fired.stdout + fired.stderr
    assert "rule fired: live accuracy" in fired.stdout and "started retraining job" in fired.stdout
    verdict = " ".join(fired.stdout.split()).rsplit("verdict: ", 1)[-1]  # the last line
    assert re.match(r"\d rule\(s\) fired \(live accuracy .*started retraining job", verdict)
    job = fired.stdout.split("started retraining job ")[1].split(":")[0]

    sm = boto3.client("sagemaker")
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=job, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    decided = postwerk(aws, "monitor", *rules)
    assert decided.returncode == 0, decided.stdout + decided.stderr

    bucket = stack_parameters()["CodeBucket"]
    challenger = registry.version(bucket, job)
    trained_on = {item.uri.rsplit("/", 1)[-1] for item in challenger.data_manifest}
    assert {f"feedback-{message_id}.jsonl" for message_id in corrected} <= trained_on
    [decision_key] = [
        obj["Key"]
        for obj in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="registry/decisions/")[
            "Contents"
        ]
    ]
    decision = registry.read(bucket, decision_key)
    assert decision["same_held_out_set"] is True and decision["challenger"] == job
    better = decision["challenger_accuracy"] > decision["champion_accuracy"] + decision["margin"]
    assert decision["promoted"] is better
    assert "promoted" in decided.stdout and ("not promoted" in decided.stdout) is not better
    assert (registry.champion(bucket).job == job) is better
    waiter = sm.get_waiter("endpoint_in_service")  # the promoted model's update, if any
    waiter.wait(EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    config = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    assert config.startswith(job[:40]) is better
    time.sleep(1)
    stop.set()
    sender.join()
    assert failures == [], f"{len(failures)} failed invocations, first: {failures[:1]}"
    models = postwerk(aws, "models")
    assert job in models.stdout


def test_down_leaves_nothing_and_up_again_reuses_the_model(local_stack, pipeline):
    environment = local_stack.environment
    down = postwerk(environment, "down")
    assert down.returncode == 0 and "stopped (embedded)" in down.stdout, down.stdout
    assert not [pid for pid in pipeline["pids"] if psutil.pid_exists(pid)]
    for port in ("POSTWERK_AWS_PORT", "POSTWERK_SAGEMAKER_PORT"):
        assert not port_in_use(int(environment[port]))
    no_aws = {k: v for k, v in environment.items() if not k.startswith("AWS_")} | {
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"
    }  # fmt: skip
    status = postwerk(no_aws, "status")
    assert status.returncode == 2 and "the local AWS is not running: start it" in status.stdout

    again = postwerk(environment, "up", "--detach", "--no-send-samples")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "training" not in again.stdout and "in service with" in again.stdout
    env = postwerk(environment, "env")
    assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{environment['POSTWERK_AWS_PORT']}" in env.stdout
    assert postwerk(environment, "status").returncode == 0


@pytest.mark.long  # a crash and a second `up`: minutes, in make test-long
def test_mail_acknowledged_right_before_a_crash_is_classified_once_after_up_again(
    local_stack, pipeline
):
    """SMTP's 250 means the message is stored; right after it, every process of the stack
    gets SIGKILL. MiniStack keeps the object (S3_PERSIST writes it at once) but loses the S3
    notification in the queue, and everything else it had not saved at a clean stop; `up`
    again sends the stored e-mail through the pipeline: one result, one line."""
    environment, state_dir = local_stack.environment, local_stack.state_dir
    message = EmailMessage()
    message["From"] = "kunde@example.org"
    message["To"] = "support@postwerk.localhost"
    message["Subject"] = "Rechnung doppelt"
    message["Message-ID"] = f"<crash-{time.time_ns()}@example.org>"
    message.set_content("Sie haben mir die Rechnung zweimal geschickt.")
    message_id = message["Message-ID"].strip("<>")
    processes = stack_processes(state_dir)
    port = int(environment["POSTWERK_SMTP_PORT"])
    with smtplib.SMTP(HOST, port, timeout=30) as client:
        client.send_message(message)  # returns once the 250 came
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert alive == []

    again = postwerk(environment, "up", "--detach", "--no-send-samples")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "through the pipeline again" in again.stdout, again.stdout
    outputs = stack_outputs()
    wait_for(lambda: any(item["message_id"] == message_id for item in results()))
    time.sleep(10)  # time enough for a second pass, were there one
    lines = [line for line in result_lines(outputs["ResultsBucket"])
             if line["message_id"] == message_id]  # fmt: skip
    assert len(lines) == 1, lines
    assert lines[0]["input"]["source"]["key"].startswith("incoming/")


def test_deploy_to_aws_is_the_same_path_and_its_dry_run_changes_nothing(local_stack, pipeline):
    """`postwerk deploy --target aws` against the local AWS (the endpoint overrides stand in
    for AWS): the plan first, then the real thing. On a real AWS target the stack's emulator
    parameters are off, so the local pipeline stops classifying until the next test's
    `pipeline` deploys it locally again."""
    aws = local_stack.with_local_aws()
    sm = boto3.client("sagemaker")
    before = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    plan = postwerk(
        aws | {"POSTWERK_REVIEW_TOKEN": "e2e-token"},
        *("deploy", "--target", "aws", "--dry-run", "--image", "postwerk-model"),
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "plan for aws (nothing was changed)" in plan.stdout
    assert "Modify" in plan.stdout and f"endpoint {ENDPOINT}: update" in plan.stdout
    cost = " ".join(plan.stdout.split())  # the table and its notes, unwrapped
    assert "monthly cost at 3,000 e-mails/day" in cost and "Lambda (4)" in cost
    assert "measured: BillableTimeInSeconds of the last job" in cost, "the training job's"
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == before
    parameters = boto3.client("cloudformation").describe_stacks(StackName="postwerk")["Stacks"][0]
    assert {"ParameterKey": "EmulatorMapping", "ParameterValue": "true"} in parameters["Parameters"]

    no_token = postwerk(aws, "deploy", "--target", "aws", "--image", "postwerk-model:test")
    assert no_token.returncode == 2 and "set POSTWERK_REVIEW_TOKEN" in no_token.stdout
    blank = postwerk(aws | {"POSTWERK_REVIEW_TOKEN": " \t "}, "deploy", "--target", "aws")
    assert blank.returncode == 2 and "set POSTWERK_REVIEW_TOKEN" in blank.stdout, "no token"
    aws |= {"POSTWERK_REVIEW_TOKEN": "e2e-token"}
    no_engine = aws | {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    no_docker = postwerk(no_engine, "deploy", "--target", "aws")
    assert no_docker.returncode == 2 and "pass --image" in no_docker.stdout, "no Docker engine"

    deployed = postwerk(aws, "deploy", "--target", "aws", "--image", "postwerk-model:test")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # The functions are now built for AWS (manylinux, Python 3.12), which MiniStack cannot
    # run on its own Python: check the token reached the function (its use is tested in
    # tests/services/test_feedback.py).
    feedback = boto3.client("lambda").get_function_configuration(FunctionName="postwerk-feedback")
    assert feedback["Environment"]["Variables"]["POSTWERK_REVIEW_TOKEN"] == "e2e-token"
    assert feedback["Runtime"] == "python3.12"
    config = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    assert config != before
    model_name = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0][
        "ModelName"
    ]
    container = sm.describe_model(ModelName=model_name)
    assert container["PrimaryContainer"]["Image"] == "postwerk-model:test"
    assert "/models/uploaded/" in container["PrimaryContainer"]["ModelDataUrl"]
    assert container["ExecutionRoleArn"] == pipeline["SageMakerRoleArn"]


READY = "Ctrl-C stops the pipeline."


def stack_processes(state_dir: Path) -> list[psutil.Process]:
    """The launcher and everything below it: MiniStack and its Lambda workers, the SageMaker
    service and its model servers (each in a session of its own, still in the tree)."""
    launcher = psutil.Process(json.loads((state_dir / "local.json").read_text())["pids"][0])
    return [launcher, *launcher.children(recursive=True)]


def wait_for_output(read: Callable[[], str], marker: str, timeout: float = 300) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} within {timeout} s:\n{seen}"
        seen += read()
    return seen


def reader_of_fd(fd: int) -> Callable[[], str]:
    def read() -> str:
        ready, _, _ = select.select([fd], [], [], 1)
        return os.read(fd, 65536).decode(errors="replace") if ready else ""

    return read


@pytest.mark.parametrize(
    ("stop_signal", "stdout"),
    [
        (signal.SIGINT, "a pipe that closed first"),  # `make up | tee`: tee dies with Ctrl-C
        (signal.SIGHUP, "a terminal that closed"),
        (signal.SIGTERM, "a file"),
    ],
)
def test_a_stop_signal_to_up_stops_everything_whatever_stdout_is(
    local_stack, tmp_path, stop_signal, stdout
):
    """`up` in the foreground, as a user runs it; the signal goes to its process group as a
    terminal sends it. It finds the stack running (from `up --detach`) or starts it again
    from its state (the model is kept), as the cases before left it."""
    environment, state_dir = local_stack.environment, local_stack.state_dir
    command = [str(POSTWERK), "up", "--no-send-samples"]
    if stdout == "a pipe that closed first":
        up = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        shown = wait_for_output(reader_of_fd(up.stdout.fileno()), READY)
        up.stdout.close()
    elif stdout == "a terminal that closed":
        terminal, screen = pty.openpty()
        up = subprocess.Popen(command, env=environment, stdin=screen, stdout=screen,
                              stderr=screen, start_new_session=True)  # fmt: skip
        os.close(screen)
        shown = wait_for_output(reader_of_fd(terminal), READY)
        os.close(terminal)
    else:
        log = tmp_path / "up.log"
        with log.open("w") as output:
            up = subprocess.Popen(command, env=environment, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        shown = wait_for_output(lambda: time.sleep(0.5) or log.read_text(), READY)
        assert "in service with" in shown and "training" not in shown, "the kept model serves"
    processes = stack_processes(state_dir)
    assert len(processes) >= 4, "launcher, MiniStack, the service and a model server at least"

    signalled = time.monotonic()
    os.killpg(up.pid, stop_signal)
    up.wait(timeout=15)
    _, alive = psutil.wait_procs(processes, timeout=max(0, signalled + 15 - time.monotonic()))
    survivors = [" ".join(process.cmdline()) for process in alive if process.is_running()]
    assert alive == [], f"still running 15 s after {stop_signal.name}: {survivors}\n{shown}"
    for port in ("POSTWERK_AWS_PORT", "POSTWERK_SAGEMAKER_PORT", "POSTWERK_SMTP_PORT"):
        assert not port_in_use(int(environment[port]))
    assert not (state_dir / "local.json").exists()
