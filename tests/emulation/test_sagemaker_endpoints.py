"""Models, endpoint configs, endpoints and InvokeEndpoint through plain boto3."""

import io
import tarfile
import threading
import time

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.support.sagemaker import (
    FAST_WAITER,
    PAYLOAD,
    create_config,
    deploy_model,
    invoke,
    model_archive,
    wait_in_service,
)


@pytest.fixture
def archive(trained_job) -> bytes:
    return model_archive(trained_job / "model")


def test_endpoint_lifecycle_with_a_blue_green_update(sagemaker, archive):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "blue", archive)
    deploy_model(sm, s3, "green", archive)
    create_config(sm, "blue-config", "blue")
    create_config(sm, "green-config", "green")
    sm.create_endpoint(EndpointName="emails", EndpointConfigName="blue-config")
    assert sm.describe_endpoint(EndpointName="emails")["EndpointStatus"] == "Creating"
    endpoint = wait_in_service(sm, "emails")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    assert endpoint["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    names = [e["EndpointName"] for e in sm.list_endpoints(StatusEquals="InService")["Endpoints"]]
    assert "emails" in names
    assert sm.list_endpoints(StatusEquals="Failed", NameContains="emails")["Endpoints"] == []
    predictions = invoke(runtime, "emails")["predictions"]
    assert len(predictions) == 2 and predictions[0]["label"]

    answers, failures, stop = [], [], threading.Event()

    def keep_invoking():
        while not stop.is_set():
            try:
                answers.append(invoke(runtime, "emails"))
            except Exception as error:
                failures.append(error)

    traffic = threading.Thread(target=keep_invoking)
    traffic.start()
    try:
        sm.update_endpoint(EndpointName="emails", EndpointConfigName="green-config")
        assert sm.describe_endpoint(EndpointName="emails")["EndpointStatus"] == "Updating"
        endpoint = wait_in_service(sm, "emails")
        time.sleep(1)  # traffic on the new fleet too
    finally:
        stop.set()
        traffic.join()
    assert endpoint["EndpointConfigName"] == "green-config"
    assert failures == [], failures[:3]
    assert len(answers) > 10

    sm.delete_endpoint(EndpointName="emails")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="emails", WaiterConfig=FAST_WAITER)
    with pytest.raises(ClientError, match="ValidationError"):
        invoke(runtime, "emails")


def test_a_killed_replica_is_noticed_and_restarted(sagemaker, sagemaker_service, archive):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "sturdy", archive)
    create_config(sm, "sturdy-config", "sturdy", instances=2)
    sm.create_endpoint(EndpointName="sturdy", EndpointConfigName="sturdy-config")
    assert wait_in_service(sm, "sturdy")["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    service, _, _ = sagemaker_service
    replicas = [p for p in psutil.Process(service.pid).children()
                if "serve" in p.cmdline()]  # fmt: skip
    replicas[0].kill()

    counts = []
    for _ in range(600):
        invoke(runtime, "sturdy")  # the other replica answers meanwhile
        endpoint = sm.describe_endpoint(EndpointName="sturdy")
        counts.append(endpoint["ProductionVariants"][0]["CurrentInstanceCount"])
        if counts[-1] == 2 and 1 in counts:
            break
        time.sleep(0.1)
    assert 1 in counts, "the dead replica is reported"
    assert counts[-1] == 2, "and restarted"
    sm.delete_endpoint(EndpointName="sturdy")


def test_invoke_errors_have_aws_shapes(sagemaker, archive):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "strict", archive)
    create_config(sm, "strict-config", "strict")
    sm.create_endpoint(EndpointName="strict", EndpointConfigName="strict-config")
    wait_in_service(sm, "strict")

    with pytest.raises(runtime.exceptions.ModelError) as bad_body:
        runtime.invoke_endpoint(EndpointName="strict", ContentType="application/json", Body=b"{")
    assert bad_body.value.response["OriginalStatusCode"] == 400
    assert "400" in bad_body.value.response["Error"]["Message"]
    with pytest.raises(runtime.exceptions.ValidationError, match="maximum"):
        runtime.invoke_endpoint(EndpointName="strict", Body=b"x" * (6 * 1024 * 1024 + 1))
    with pytest.raises(runtime.exceptions.ValidationError, match="not found"):
        runtime.invoke_endpoint(EndpointName="nowhere", Body=PAYLOAD)
    sm.delete_endpoint(EndpointName="strict")


def test_control_plane_errors(sagemaker, archive):
    sm, _, s3 = sagemaker
    with pytest.raises(ClientError, match=r"ValidationException.*Could not find endpoint"):
        sm.describe_endpoint(EndpointName="nowhere")
    with pytest.raises(ClientError, match=r"ValidationException.*Could not find model"):
        create_config(sm, "orphan-config", "no-such-model")
    with pytest.raises(ClientError, match=r"ValidationException.*endpoint configuration"):
        sm.create_endpoint(EndpointName="orphan", EndpointConfigName="no-such-config")
    deploy_model(sm, s3, "once", archive)
    with pytest.raises(ClientError, match="already existing model"):
        deploy_model(sm, s3, "once", archive)
    assert "once" in [m["ModelName"] for m in sm.list_models(NameContains="once")["Models"]]
    sm.delete_model(ModelName="once")
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="once")


def evil_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        content = b"owned"
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "archive_bytes", "reason"),
    [
        ("corrupt", b"not a tar.gz at all", "cannot unpack"),
        ("traversal", evil_archive(), "outside the destination"),
    ],
)
def test_bad_model_archives_fail_the_endpoint(
    case, archive_bytes, reason, sagemaker, sagemaker_service
):
    sm, _, s3 = sagemaker
    _, _, state_dir = sagemaker_service
    deploy_model(sm, s3, case, archive_bytes)
    create_config(sm, f"{case}-config", case)
    sm.create_endpoint(EndpointName=case, EndpointConfigName=f"{case}-config")
    endpoint = wait_in_service(sm, case)
    assert endpoint["EndpointStatus"] == "Failed"
    assert endpoint["FailureReason"].startswith("ClientError: ")
    assert reason in endpoint["FailureReason"]
    assert not list(state_dir.parent.rglob("escaped.txt")), "nothing written outside"
    sm.delete_endpoint(EndpointName=case)
