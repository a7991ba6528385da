"""What the `postwerk` commands ask of SageMaker, through plain boto3.

The same calls reach the local SageMaker service (AWS_ENDPOINT_URL_SAGEMAKER set, as
`postwerk env` prints it) or AWS (nothing set). Nothing here knows which.
"""

import functools
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from model.contract import METRIC_DEFINITIONS
from postwerk.errors import CommandError
from postwerk.settings import CliSettings
from services import clients, storage, waits
from services.lifecycle import Serving, s3_channel

FINISHED = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# A training job's time besides its run: instances start, data and the model are copied.
START_MARGIN_S = 1800
DEFAULT_MAX_RUNTIME_S = 24 * 3600  # SageMaker's, where a stopping condition gives none


def ensure_bucket(bucket: str) -> None:
    s3 = clients.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = s3.meta.region_name
        location = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **location)


def parse_hyperparameters(pairs: list[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        name, sign, value = pair.partition("=")
        if not sign or not name:
            raise CommandError(f"hyperparameter '{pair}' is not name=value")
        parsed[name.strip()] = value.strip()
    return parsed


@functools.cache
def artifact_bucket(configured: str) -> str:
    """POSTWERK_BUCKET, else postwerk-artifacts-<account>-<region> (bucket names are global)."""
    if configured:
        return configured
    account = clients.client("sts").get_caller_identity()["Account"]
    return f"postwerk-artifacts-{account}-{clients.region()}"


def upload_channels(settings: CliSettings, name: str, channels: dict[str, Path]) -> list[dict]:
    """Each channel's file or folder to s3://bucket/jobs/<name>/<channel>/; InputDataConfig."""
    bucket = artifact_bucket(settings.bucket)
    ensure_bucket(bucket)
    config = []
    for channel, path in channels.items():
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if not files:
            raise CommandError(f"{channel}: no files in {path}")
        prefix = f"jobs/{name}/{channel}"
        for file in files:
            key = f"{prefix}/{file.relative_to(path) if path.is_dir() else file.name}"
            storage.upload(file, bucket, key)
        config.append(s3_channel(channel, f"s3://{bucket}/{prefix}/"))
    return config


def training_definition(
    settings: CliSettings, inputs: list[dict], hyperparameters: dict[str, Any]
) -> dict[str, Any]:
    """The job definition that CreateTrainingJob and tuning jobs share."""
    return {
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": settings.role_arn,
        "InputDataConfig": inputs,
        "OutputDataConfig": {"S3OutputPath": f"s3://{artifact_bucket(settings.bucket)}/models"},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "HyperParameters": {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in hyperparameters.items()
        },
    }


def on_aws() -> bool:
    """SageMaker is AWS's: no endpoint override (`postwerk env` sets one for the local stack)."""
    return not (os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER") or os.environ.get("AWS_ENDPOINT_URL"))


def wants_spot(settings: CliSettings, asked: bool | None) -> bool:
    """--spot/--no-spot, else POSTWERK_SPOT on AWS; on the local stack only when asked."""
    return asked if asked is not None else settings.spot and on_aws()


def with_spot(settings: CliSettings, definition: dict[str, Any], job: str) -> dict[str, Any]:
    """The definition as a managed spot training job: it may be interrupted, and restarts
    from the checkpoints synced to s3://<bucket>/checkpoints/<job>/ (a tuning job's trials:
    below that, each in its own folder where the service puts them so)."""
    stopping = definition["StoppingCondition"]
    runtime = stopping["MaxRuntimeInSeconds"]
    wait = max(settings.max_wait_seconds or 2 * runtime, runtime)  # AWS: MaxWait >= MaxRuntime
    bucket = artifact_bucket(settings.bucket)
    return definition | {
        "EnableManagedSpotTraining": True,
        "StoppingCondition": stopping | {"MaxWaitTimeInSeconds": wait},
        "CheckpointConfig": {"S3Uri": f"s3://{bucket}/checkpoints/{job}/"},
    }


def billing_summary(description: dict) -> str | None:
    """Training and billable seconds, and the saving of managed spot training as AWS
    computes it: (1 - BillableTimeInSeconds / TrainingTimeInSeconds) * 100."""
    training = description.get("TrainingTimeInSeconds")
    billable = description.get("BillableTimeInSeconds")
    if training is None or billable is None:
        return None
    text = f"training {training} s, billable {billable} s"
    if description.get("EnableManagedSpotTraining") and training:
        text += f" (managed spot training saved {(1 - billable / training) * 100:.1f}%)"
    return text


@dataclass
class JobProgress:
    status: str
    secondary: str
    message: str
    new_log_lines: list[str]


def follow_training_job(name: str, poll_seconds: float = 1.0) -> Iterator[JobProgress]:
    """DescribeTrainingJob and the job's CloudWatch log, until the job has finished
    (TimedOut past its stopping condition and START_MARGIN_S)."""
    sm, logs = clients.client("sagemaker"), clients.client("logs")
    timeout = training_timeout(sm.describe_training_job(TrainingJobName=name))
    token: str | None = None
    stream: str | None = None
    for _ in waits.polls(f"training job {name}", timeout, poll_seconds):
        job = sm.describe_training_job(TrainingJobName=name)
        stream = stream or find_log_stream(logs, name)
        lines: list[str] = []
        if stream:  # read after Describe: a finished job's log is complete
            lines, token = read_log(logs, stream, token)
        transitions = job.get("SecondaryStatusTransitions") or [{}]
        yield JobProgress(
            job["TrainingJobStatus"],
            job["SecondaryStatus"],
            transitions[-1].get("StatusMessage", ""),
            lines,
        )
        if job["TrainingJobStatus"] in FINISHED:
            return


def training_timeout(definition: dict) -> float:
    """How long a training job may take: SageMaker stops it after its stopping condition."""
    stopping = definition.get("StoppingCondition", {})
    runtime = stopping.get("MaxWaitTimeInSeconds") or stopping.get("MaxRuntimeInSeconds")
    return (runtime or DEFAULT_MAX_RUNTIME_S) + START_MARGIN_S


def find_log_stream(logs, name: str) -> str | None:
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    except logs.exceptions.ResourceNotFoundException:
        return None
    return streams["logStreams"][0]["logStreamName"] if streams["logStreams"] else None


def read_log(logs, stream: str, token: str | None) -> tuple[list[str], str | None]:
    arguments = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
    if token:
        arguments["nextToken"] = token
    answer = logs.get_log_events(**arguments)
    return [e["message"] for e in answer["events"]], answer.get("nextForwardToken", token)


def wait_for_tuning_job(name: str, on_update: Callable[[dict], None], poll_seconds=2.0) -> dict:
    """The tuning job's description once it has finished, shown to `on_update` as it goes
    (TimedOut past what its training jobs may take)."""
    sm = clients.client("sagemaker")
    timeout = tuning_timeout(
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    )
    for _ in waits.polls(f"tuning job {name}", timeout, poll_seconds):
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        on_update(job)
        if job["HyperParameterTuningJobStatus"] in FINISHED:
            break
    return job


def tuning_timeout(job: dict) -> float:
    """How long a tuning job may take: its own limit, else its training jobs' in rounds of
    the parallel ones (a grid search runs one per combination of its categorical values)."""
    config = job["HyperParameterTuningJobConfig"]
    limits = config["ResourceLimits"]
    if "MaxRuntimeInSeconds" in limits:
        return limits["MaxRuntimeInSeconds"] + START_MARGIN_S
    values = config["ParameterRanges"].get("CategoricalParameterRanges", [])
    trainings = limits.get("MaxNumberOfTrainingJobs") or math.prod(len(r["Values"]) for r in values)
    rounds = math.ceil(trainings / limits["MaxParallelTrainingJobs"])
    return rounds * training_timeout(job.get("TrainingJobDefinition", {}))


def tuning_trials(name: str) -> list[dict]:
    sm = clients.client("sagemaker")
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending"
    )
    return [summary for page in pages for summary in page["TrainingJobSummaries"]]


def serving(
    settings: CliSettings,
    instances: int,
    image: str = "",
    role_arn: str = "",
    serverless: dict | None = None,
) -> Serving:
    """What serves a model, from the settings unless given: `instances` replicas, or
    serverless (`serverless`: its ServerlessConfig, see serverless_config)."""
    return Serving(
        image or settings.serving_image,
        role_arn or settings.role_arn,
        settings.serving_instance_type,
        instances,
        serverless=serverless,
    )


def serverless_config(memory_mb: int, max_concurrency: int) -> dict:
    """A ServerlessConfig: no ProvisionedConcurrency, so it costs nothing while idle."""
    return {"MemorySizeInMB": memory_mb, "MaxConcurrency": max_concurrency}


def predict(endpoint: str, instances: list[dict]) -> dict:
    runtime = clients.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": instances}),
    )
    return json.loads(answer["Body"].read())
