"""Training on several instances, locally as on AWS: a container per host (algo-1 ...
algo-N) with its own /opt/ml, a log stream per host, the model uploaded once, and a failed
host failing the job (on the CPU: gloo)."""

import io
import os
import signal
import tarfile
import time
from pathlib import Path

import boto3
import psutil
import pytest

from emulation.sagemaker.training import share
from tests.support.sagemaker import BUCKET, training_request, wait_for_training_job
from tests.support.tiny_model import tiny_hyperparameters

# The container finds the first host by name; as local processes the hosts are all
# 127.0.0.1, which model/distributed.py takes from MASTER_ADDR when it is set.
RENDEZVOUS_ON_LOOPBACK = (
    "MASTER_ADDR" in (Path(__file__).resolve().parents[2] / "model" / "distributed.py").read_text()
)


def archive_names(s3, uri: str) -> set[str]:
    body = s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return set(tar.getnames())


def job_seconds(job: dict) -> float:
    return (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()


def two_instances(name: str, s3, tiny_bert) -> dict:
    request = training_request(name, s3, tiny_hyperparameters(tiny_bert, epochs=1))
    request["ResourceConfig"]["InstanceCount"] = 2
    return request


@pytest.mark.skipif(
    not RENDEZVOUS_ON_LOOPBACK, reason="model/distributed.py does not read MASTER_ADDR yet"
)
def test_two_instances_train_the_same_artifacts_as_one(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    sm.create_training_job(**two_instances("two-hosts", s3, tiny_bert))
    one = training_request("one-host", s3, tiny_hyperparameters(tiny_bert, epochs=1))
    sm.create_training_job(**one)
    jobs = {name: wait_for_training_job(sm, name) for name in ("two-hosts", "one-host")}
    for job in jobs.values():
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    names = {n: archive_names(s3, j["ModelArtifacts"]["S3ModelArtifacts"]) for n, j in jobs.items()}
    assert names["two-hosts"] == names["one-host"]
    streams = boto3.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="two-hosts/"
    )["logStreams"]
    assert sorted(s["logStreamName"].split("-")[2] for s in streams) == ["1", "2"]
    print({name: job_seconds(job) for name, job in jobs.items()})


def test_a_killed_host_fails_the_job(sagemaker, sagemaker_service, tiny_bert):
    sm, _, s3 = sagemaker
    sm.create_training_job(**two_instances("killed-host", s3, tiny_bert))
    second = host_process(sagemaker_service[0].pid, "killed-host/algo-2")
    os.killpg(second.pid, signal.SIGKILL)  # the host with all its processes
    started = time.monotonic()
    job = wait_for_training_job(sm, "killed-host")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: algo-2: "), job["FailureReason"]
    assert "exit code -9" in job["FailureReason"]
    assert time.monotonic() - started < 60, "the other host is stopped, not waited for"


def host_process(service_pid: int, base_suffix: str) -> psutil.Process:
    """The training process of one host, found by its SAGEMAKER_BASE_DIR."""
    for _ in range(600):
        for child in psutil.Process(service_pid).children():
            try:
                if child.environ().get("SAGEMAKER_BASE_DIR", "").endswith(base_suffix):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.1)
    raise AssertionError(f"no training process for {base_suffix}")


def test_channels_are_replicated_or_sharded(tmp_path):
    first, second = tmp_path / "algo-1", tmp_path / "algo-2"
    for name in ("a.jsonl", "b.jsonl", "sub/c.jsonl"):
        (first / name).parent.mkdir(parents=True, exist_ok=True)
        (first / name).write_text(name)
    share(first, [first, second], "FullyReplicated")
    assert (second / "sub" / "c.jsonl").read_text() == "sub/c.jsonl"
    assert len(list(first.rglob("*.jsonl"))) == 3

    share(first, [first, tmp_path / "x", tmp_path / "y"], "ShardedByS3Key")
    shards = [sorted(p.name for p in (tmp_path / h).rglob("*.jsonl")) for h in ("algo-1", "x", "y")]
    assert shards == [["a.jsonl"], ["b.jsonl"], ["c.jsonl"]]
