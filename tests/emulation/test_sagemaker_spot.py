"""Managed spot training through plain boto3 against the local SageMaker service: jobs
interrupted on a plan (the tag postwerk:spot-interruptions), restarted from the checkpoints
the service syncs to S3 while they train, billed for the time they had instances."""

import io
import tarfile
import time

import boto3
import pytest
from safetensors.torch import load

from emulation.sagemaker.spot import INTERRUPTED_MESSAGE, MAX_WAIT_MESSAGE, TAG
from tests.support.sagemaker import (
    BUCKET,
    training_request,
    tuning_request,
    tuning_trials,
    wait_for_training_job,
    wait_for_tuning_job,
)
from tests.support.tiny_model import tiny_hyperparameters

pytestmark = pytest.mark.long  # make test-long: minutes of jobs and endpoints

TOLERANCE = 1e-5  # the same batches and RNG on the CPU: in practice the same bits


def spot_request(name: str, s3, hyperparameters: dict, plan: str, max_wait: int) -> dict:
    return training_request(
        name,
        s3,
        hyperparameters,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": max_wait},
        CheckpointConfig={"S3Uri": f"s3://{BUCKET}/{name}/checkpoints"},
        Tags=[{"Key": TAG, "Value": plan}],
    )


def log_events(name: str) -> list[dict]:
    logs = boto3.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")
    stream = streams["logStreams"][0]["logStreamName"]
    return logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)[
        "events"
    ]


def startup_seconds(job: dict) -> float:
    """From the job's start of training to its loop's first line ("training ... steps")."""
    started = job["TrainingStartTime"].timestamp()
    for event in log_events(job["TrainingJobName"]):
        if " training " in event["message"] and " steps of " in event["message"]:
            return event["timestamp"] / 1000 - started
    raise AssertionError("no 'training ...' line in the log")


def weights(s3, job: dict) -> dict:
    key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix(f"s3://{BUCKET}/")
    archive = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return load(tar.extractfile("model.safetensors").read())


@pytest.mark.timeout(900)
def test_a_spot_job_interrupted_twice_completes_from_its_checkpoints(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    hyperparameters = tiny_hyperparameters(tiny_bert, epochs=120, checkpoint_every_steps=2)
    sm.create_training_job(**training_request("spot-twin", s3, hyperparameters))
    on_demand = wait_for_training_job(sm, "spot-twin")
    assert on_demand["TrainingJobStatus"] == "Completed", on_demand.get("FailureReason")
    seconds = on_demand["TrainingTimeInSeconds"]
    assert on_demand["BillableTimeInSeconds"] == seconds, "on demand: all of it"

    # Two interruptions of the spot job while its loop trains, whatever this machine's speed
    # (2 shared cores: from 10 to 100 s for this job): the container's start (imports, model
    # load) measured on its on-demand twin's log, then 15% of the twin's training work in
    # each of the first two attempts, so the third resumes and does the last 70%: the spot job
    # is still interrupted twice when the load on the machine changes between the two runs.
    start = startup_seconds(on_demand)
    work = max(seconds - start, 1.0)
    first = start + 0.15 * work
    plan = f"after={first:.1f},{2 * first:.1f};wait=4"
    sm.create_training_job(**spot_request("spot-twice", s3, hyperparameters, plan, max_wait=1800))
    synced_while_training, shown = [], ""
    while (job := sm.describe_training_job(TrainingJobName="spot-twice"))["TrainingJobStatus"] == (
        "InProgress"
    ):
        if not synced_while_training and job["SecondaryStatus"] == "Training":
            # a complete checkpoint (its pointer comes last) in S3 while the job trains
            listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="spot-twice/checkpoints/")
            keys = [item["Key"] for item in listed.get("Contents", [])]
            synced_while_training = keys if any(k.endswith("/LATEST") for k in keys) else []
        if job["SecondaryStatus"] != shown:
            shown = job["SecondaryStatus"]
            print(f"{time.strftime('%X')} {shown}: {job['SecondaryStatusTransitions'][-1]}")
        time.sleep(0.5)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")

    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    attempt = ["Starting", "Downloading", "Training"]
    assert statuses == [*attempt, "Interrupted"] * 2 + [*attempt, "Uploading", "Completed"]
    interrupted = [t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Interrupted"]
    assert {t["StatusMessage"] for t in interrupted} == {INTERRUPTED_MESSAGE}
    assert any("LATEST" in key for key in synced_while_training), synced_while_training

    training, billable = job["TrainingTimeInSeconds"], job["BillableTimeInSeconds"]
    accuracy = {
        name: {m["MetricName"]: m["Value"] for m in done["FinalMetricDataList"]}[
            "validation_accuracy"
        ]
        for name, done in (("on demand", on_demand), ("spot", job))
    }
    expected, actual = weights(s3, on_demand), weights(s3, job)
    worst = max((expected[k] - actual[k]).abs().max().item() for k in expected)
    print(
        f"\nspot job: {len(interrupted)} interruptions (plan {plan}), training {training} s, "
        f"billable {billable} s, saving {(1 - billable / training) * 100:.0f}%; "
        f"on demand: training {seconds} s (start {start:.1f} s); validation accuracy {accuracy}; "
        f"max weight difference {worst:.1e}; synced while training: {len(synced_while_training)}"
        " objects"
    )
    assert billable < training
    assert accuracy["spot"] == accuracy["on demand"]
    log = " ".join(event["message"] for event in log_events("spot-twice"))
    assert "resumed from checkpoint" in log and "stopped on SIGTERM" in log
    assert worst <= TOLERANCE


def test_max_wait_time_ends_a_spot_job_as_aws_does(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    hyperparameters = tiny_hyperparameters(tiny_bert, epochs=500, checkpoint_every_steps=2)
    request = spot_request("spot-wait", s3, hyperparameters, "after=3;wait=600", max_wait=25)
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = 20
    sm.create_training_job(**request)
    job = wait_for_training_job(sm, "spot-wait")
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxWaitTimeExceeded"
    last = job["SecondaryStatusTransitions"][-1]
    assert last["Status"] == "MaxWaitTimeExceeded" and last["StatusMessage"] == MAX_WAIT_MESSAGE
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]][-2] == "Interrupted"
    assert "FailureReason" not in job
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"]
    print(
        f"\nmax wait: training {job['TrainingTimeInSeconds']} s, "
        f"billable {job['BillableTimeInSeconds']} s"
    )


def test_a_bad_interruption_plan_is_refused(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    request = spot_request("spot-bad", s3, tiny_hyperparameters(tiny_bert), "sometimes", 900)
    try:
        sm.create_training_job(**request)
    except sm.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "ValidationException"
        assert "spot interruption plan 'sometimes'" in error.response["Error"]["Message"]
    else:
        raise AssertionError("accepted")


def test_tuning_trials_run_on_spot_each_with_its_own_checkpoints(sagemaker, tiny_bert):
    sm, _, s3 = sagemaker
    limits = {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2}
    config = {"Strategy": "Random", "RandomSeed": 3, "ResourceLimits": limits}
    request = tuning_request("spot-tune", s3, tiny_bert, config, epochs=1)
    request["TrainingJobDefinition"] |= {
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900},
        "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/spot-tune/checkpoints/"},
    }
    sm.create_hyper_parameter_tuning_job(**request)
    job = wait_for_tuning_job("spot-tune")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    names = [trial["TrainingJobName"] for trial in tuning_trials(sm, "spot-tune")]
    assert len(names) == 2
    for name in names:
        trial = sm.describe_training_job(TrainingJobName=name)
        assert trial["TrainingJobStatus"] == "Completed", trial.get("FailureReason")
        assert trial["EnableManagedSpotTraining"] is True
        uri = f"s3://{BUCKET}/spot-tune/checkpoints/{name}/"
        assert trial["CheckpointConfig"]["S3Uri"] == uri
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"spot-tune/checkpoints/{name}/")
        assert any(item["Key"].endswith("/LATEST") for item in listed["Contents"])
