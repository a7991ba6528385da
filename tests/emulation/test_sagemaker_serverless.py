"""Serverless endpoints through plain boto3: no replica while idle, a cold start on the next
request, ThrottlingException beyond MaxConcurrency, ProvisionedConcurrency kept warm."""

import json
import statistics
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.sagemaker import (
    PAYLOAD,
    SERVERLESS_IDLE_SECONDS,
    create_serverless_config,
    deploy_model,
    invoke,
    model_archive,
    replica_processes,
    wait_in_service,
)

pytestmark = pytest.mark.long  # make test-long: minutes of jobs and endpoints


@pytest.fixture
def archive(trained_job) -> bytes:
    return model_archive(trained_job / "model")


def no_retries():
    """A runtime client that shows a throttled call (boto3's default retries it)."""
    return boto3.client("sagemaker-runtime", config=Config(retries={"max_attempts": 1}))


def timed_invoke(runtime, name: str) -> float:
    began = time.perf_counter()
    invoke(runtime, name)
    return time.perf_counter() - began


def wait_for_replicas(sagemaker_service, endpoint: str, count: int, within: float) -> list:
    deadline = time.monotonic() + within
    while len(found := replica_processes(sagemaker_service, endpoint)) != count:
        assert time.monotonic() < deadline, f"{len(found)} replica(s), not {count}"
        time.sleep(0.2)
    return found


def concurrently(runtime, endpoint: str, threads: int, times: int = 1) -> list:
    """`threads` callers at once, each `times` calls in a row: "ok" or the ClientError."""
    outcomes: list = []
    start = threading.Barrier(threads)

    def call() -> None:
        start.wait()
        for _ in range(times):
            try:
                runtime.invoke_endpoint(EndpointName=endpoint, Body=PAYLOAD,
                                        ContentType="application/json")  # fmt: skip
                outcomes.append("ok")
            except ClientError as error:
                outcomes.append(error)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def test_an_idle_serverless_endpoint_has_no_replica_starts_cold_and_throttles(
    sagemaker, sagemaker_service, archive
):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "lazy", archive)
    create_serverless_config(sm, "lazy-config", "lazy", MaxConcurrency=2)
    sm.create_endpoint(EndpointName="lazy", EndpointConfigName="lazy-config")
    endpoint = wait_in_service(sm, "lazy")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    [variant] = endpoint["ProductionVariants"]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    assert variant["DesiredServerlessConfig"] == variant["CurrentServerlessConfig"]
    assert "CurrentInstanceCount" not in variant and "DesiredInstanceCount" not in variant

    invoke(runtime, "lazy")  # the container's first inference, not timed
    warm = [timed_invoke(runtime, "lazy") for _ in range(15)]
    wait_for_replicas(sagemaker_service, "lazy", 0, within=SERVERLESS_IDLE_SECONDS + 15)
    cold = timed_invoke(runtime, "lazy")
    assert len(replica_processes(sagemaker_service, "lazy")) == 1, "started by the request"
    again = timed_invoke(runtime, "lazy")
    print(
        f"serverless: warm p50 {statistics.median(warm) * 1000:.0f} ms, first call after "
        f"scale-to-zero {cold * 1000:.0f} ms, the call after it {again * 1000:.0f} ms"
    )
    assert cold > statistics.median(warm), "the first call pays the cold start"
    assert cold > again

    # at MaxConcurrency 2: 16 calls during a cold start, two wait for it, the rest refused
    wait_for_replicas(sagemaker_service, "lazy", 0, within=SERVERLESS_IDLE_SECONDS + 15)
    beyond = concurrently(no_retries(), "lazy", threads=16)
    assert beyond.count("ok") == 2, beyond
    for error in [o for o in beyond if o != "ok"]:
        assert error.response["Error"]["Code"] == "ThrottlingException"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "MaxConcurrency" in error.response["Error"]["Message"]
    within = concurrently(no_retries(), "lazy", threads=2, times=5)
    assert within == ["ok"] * 10, "at most MaxConcurrency at once: every call passes"
    sm.delete_endpoint(EndpointName="lazy")


def test_provisioned_concurrency_keeps_a_replica_warm(sagemaker, sagemaker_service, archive):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "warm", archive)
    create_serverless_config(sm, "warm-config", "warm", MaxConcurrency=2,
                             ProvisionedConcurrency=1)  # fmt: skip
    sm.create_endpoint(EndpointName="warm", EndpointConfigName="warm-config")
    endpoint = wait_in_service(sm, "warm")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    assert endpoint["ProductionVariants"][0]["CurrentServerlessConfig"] == {
        "MemorySizeInMB": 2048, "MaxConcurrency": 2, "ProvisionedConcurrency": 1
    }  # fmt: skip
    invoke(runtime, "warm")
    time.sleep(SERVERLESS_IDLE_SECONDS + 2)
    assert len(replica_processes(sagemaker_service, "warm")) == 1, "provisioned: kept warm"
    assert timed_invoke(runtime, "warm") < 2, "no cold start"
    sm.delete_endpoint(EndpointName="warm")


def test_a_serverless_variant_stands_alone(sagemaker):
    sm, _, _ = sagemaker
    variants = [
        {"VariantName": "a", "ModelName": "alone", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"},
        {"VariantName": "b", "ModelName": "alone",
         "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}},
    ]  # fmt: skip
    with pytest.raises(ClientError, match=r"a serverless variant: .* only variant"):
        sm.create_endpoint_config(EndpointConfigName="mixed", ProductionVariants=variants)


def test_target_variant_picks_the_variant(sagemaker, archive):
    sm, runtime, s3 = sagemaker
    deploy_model(sm, s3, "split", archive)
    sm.create_endpoint_config(
        EndpointConfigName="split-config",
        ProductionVariants=[
            {"VariantName": "a", "ModelName": "split", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0},
            {"VariantName": "b", "ModelName": "split", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": 0.0},
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="split", EndpointConfigName="split-config")
    endpoint = wait_in_service(sm, "split")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    by_weight = {
        runtime.invoke_endpoint(EndpointName="split", Body=PAYLOAD,
                                ContentType="application/json")["InvokedProductionVariant"]
        for _ in range(5)
    }  # fmt: skip
    assert by_weight == {"a"}, "weight 0: no traffic unless targeted"
    answer = runtime.invoke_endpoint(
        EndpointName="split", Body=PAYLOAD, ContentType="application/json", TargetVariant="b"
    )
    assert answer["InvokedProductionVariant"] == "b"
    assert json.loads(answer["Body"].read())["predictions"]
    with pytest.raises(runtime.exceptions.ValidationError, match="Variant c not found"):
        runtime.invoke_endpoint(EndpointName="split", Body=PAYLOAD, TargetVariant="c")
    sm.delete_endpoint(EndpointName="split")
