"""InvokeEndpoint through the local SageMaker service against calling the container directly.

Starts the embedded AWS backend (MiniStack) and the local SageMaker service under
bench/work/invoke/, deploys the model as an endpoint (one replica), then sends the same
one-e-mail request alternately to the replica's /invocations (the baseline) and to the
service's /endpoints/<name>/invocations, with the same keep-alive httpx client, one at a time.
Alternating cancels the machine's drift between the two. Reports p50/p99 of each and the
overhead the service adds (target: < 2 ms at p50); boto3's invoke_endpoint (signing and
parsing included) is shown for information.

Also measured: CreateEndpoint -> InService, and for a 1-epoch job on 770 Banking77 rows,
CreateTrainingJob -> TrainingStartTime (S3 download and /opt/ml layout done, the container
starting) and -> the container's first log line (Python and PyTorch imported).

Model: --model DIR, else the one bench.accuracy trained, else an untrained MiniLM head
(speed only); see bench.serving.

Reproduce (from the repository root; about a minute):
    python -m bench.invoke --data ../shared/data/banking77
"""

import contextlib
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import boto3
import httpx
import psutil
from botocore.exceptions import WaiterError

from bench.common import (
    BENCH_BUCKET,
    BENCH_ROLE,
    TEXT,
    base_parser,
    create_model,
    finish,
    load_banking77,
    print_table,
    stratified_sample,
    work_dir,
)
from bench.serving import free_port, resolve_model
from emulation.ministack import MiniStack
from emulation.sagemaker.launcher import start_service, stop_service
from model.contract import METRIC_DEFINITIONS

NAME = "invoke"


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a trained model folder")
    parser.add_argument("--requests", type=int, default=1000, help="per target")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.requests = 100
    return args


def deploy(sm, s3, model_dir: Path) -> float:
    """Upload model.tar.gz, create the endpoint; returns seconds to InService."""
    create_model(sm, s3, model_dir)
    sm.create_endpoint_config(
        EndpointConfigName="bench",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "bench",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    started = time.perf_counter()
    sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="bench", WaiterConfig={"Delay": 0.2, "MaxAttempts": 3000}
    )
    return time.perf_counter() - started


def replica_url(service: subprocess.Popen) -> str:
    """The one serving container's address, read from its environment."""
    for child in psutil.Process(service.pid).children():
        if "serve" in child.cmdline():
            return f"http://127.0.0.1:{child.environ()['SAGEMAKER_BIND_TO_PORT']}"
    raise SystemExit("no serving replica found")


def alternate(direct: str, service: str, body: bytes, count: int) -> tuple[list, list]:
    """Latencies in ms, one request at a time, alternating between the two targets."""
    headers = {"Content-Type": "application/json"}
    timings: tuple[list[float], list[float]] = ([], [])
    with httpx.Client(trust_env=False) as client:
        for i in range(count * 2 + 20):
            target = i % 2
            url = (direct, service)[target]
            started = time.perf_counter()
            answer = client.post(url, content=body, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            if i >= 20:  # warm-up
                timings[target].append(elapsed)
    return timings


def boto3_latencies(runtime, body: bytes, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName="bench", ContentType="application/json", Body=body)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def training_start_seconds(sm, s3, rows) -> dict[str, float]:
    body = "".join(json.dumps({"text": r[TEXT], "label": r["category"]}) + "\n" for r in rows)
    s3.put_object(Bucket=BENCH_BUCKET, Key="data/train/rows.jsonl", Body=body)
    request = {
        "TrainingJobName": "bench-start",
        "AlgorithmSpecification": {
            "TrainingImage": "postwerk-model",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": BENCH_ROLE,
        "HyperParameters": {"epochs": "1", "max_length": "32"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BENCH_BUCKET}/data/train/",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BENCH_BUCKET}/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    sm.create_training_job(**request)
    with contextlib.suppress(WaiterError):  # a failed job is reported below
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="bench-start", WaiterConfig={"Delay": 1, "MaxAttempts": 3600}
        )
    job = sm.describe_training_job(TrainingJobName="bench-start")
    if job["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"the training job failed: {job.get('FailureReason')}")
    created = job["CreationTime"].timestamp()
    logs, group = boto3.client("logs"), "/aws/sagemaker/TrainingJobs"
    stream = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="bench-start/")
    first_line = (
        logs.get_log_events(
            logGroupName=group,
            logStreamName=stream["logStreams"][0]["logStreamName"],
            startFromHead=True,
            limit=1,
        )["events"][0]["timestamp"]
        / 1000
    )
    return {
        "status": job["TrainingJobStatus"],
        "create_to_training_start_s": job["TrainingStartTime"].timestamp() - created,
        "create_to_first_log_line_s": first_line - created,
        "create_to_completed_s": job["TrainingEndTime"].timestamp() - created,
    }


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))],
        "mean_ms": statistics.fmean(ordered),
    }


def main() -> None:
    args = parse_args()
    train_rows, _ = load_banking77(args.data)
    labels = sorted({row["category"] for row in train_rows})
    model_dir, _ = resolve_model(args, labels)
    state = work_dir(NAME, clean=True)
    backend = MiniStack(state, free_port())
    backend.start()
    aws_env = backend.client_environment()
    os.environ.update(aws_env)
    service, url = start_service(state / "sagemaker", free_port(), aws_env)
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = (
        url
    )
    try:
        sm, runtime, s3 = (boto3.client(s) for s in ("sagemaker", "sagemaker-runtime", "s3"))
        s3.create_bucket(
            Bucket=BENCH_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        in_service = deploy(sm, s3, model_dir)
        body = b'{"inputs": ["I still have not received my new card, where is it?"]}'
        direct, through = alternate(
            f"{replica_url(service)}/invocations",
            f"{url}/endpoints/bench/invocations",
            body,
            args.requests,
        )
        with_boto3 = boto3_latencies(runtime, body, args.requests // 2)
        training = training_start_seconds(sm, s3, stratified_sample(train_rows, 770, args.seed))
    finally:
        stop_service(service, 60)
        backend.stop()

    results = {"direct": summary(direct), "service": summary(through), "boto3": summary(with_boto3)}
    overhead_p50 = results["service"]["p50_ms"] - results["direct"]["p50_ms"]
    overhead_p99 = results["service"]["p99_ms"] - results["direct"]["p99_ms"]
    print_table(
        f"one e-mail per request, {args.requests} requests per target, one at a time",
        ["target", "p50 ms", "p99 ms", "mean ms"],
        [(name, r["p50_ms"], r["p99_ms"], r["mean_ms"]) for name, r in results.items()],
    )
    print(
        f"\nservice overhead: p50 +{overhead_p50:.2f} ms, p99 +{overhead_p99:.2f} ms "
        f"(x{results['service']['p50_ms'] / results['direct']['p50_ms']:.3f} of direct p50; "
        "target < 2 ms at p50)"
    )
    print(f"CreateEndpoint -> InService: {in_service:.1f} s")
    print(
        f"CreateTrainingJob -> Training status {training['create_to_training_start_s']:.2f} s, "
        f"-> the container's first log line {training['create_to_first_log_line_s']:.2f} s, "
        f"-> {training['status']} {training['create_to_completed_s']:.1f} s"
    )
    finish(
        NAME,
        {
            "requests_per_target": args.requests,
            "model_dir": str(model_dir),
            "latency": results,
            "overhead_p50_ms": overhead_p50,
            "overhead_p99_ms": overhead_p99,
            "create_endpoint_to_in_service_s": in_service,
            "training_job": training,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
