"""A batch transform job against the model server alone, in texts per second.

Starts the embedded AWS backend (MiniStack) and the local SageMaker service under
bench/work/transform/, uploads Banking77's test texts as a JSON Lines archive (4 objects,
`{"id", "text"}` per line), and runs a transform job over it as the archive use case does:
SplitType Line, MultiRecord, JoinSource Input with an OutputFilter keeping the id and the
answer, AssembleWith Line. The baseline is the same serving container started alone,
sent the same records as JSON Lines requests of the same size (1000 records) with the same
concurrency: its first pass (a fresh container, as the job's) and a warm second pass. The
job's rate counts from TransformStartTime (its
container answered /ping) to TransformEndTime; the rate from CreateTransformJob, container
start included, is shown too. Target: the job >= 90% of the server alone (first pass).

Model: --model DIR, else the one bench.accuracy trained, else an untrained MiniLM head
(speed only); see bench.serving.

Reproduce (from the repository root; about two minutes on 2 CPU cores):
    python -m bench.transform --data ../shared/data/banking77
"""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx

from bench.common import (
    BENCH_BUCKET,
    PYTHON,
    TEXT,
    base_parser,
    create_model,
    finish,
    load_banking77,
    print_table,
    work_dir,
)
from bench.serving import HOST, ServerSpec, free_port, resolve_model, running, sagemaker_base
from emulation.ministack import MiniStack
from emulation.sagemaker.launcher import start_service, stop_service

NAME = "transform"
OBJECTS = 4
RECORDS_PER_REQUEST = 1000  # what the job sends: the serving container's cap per request
TARGET = 0.9


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a trained model folder")
    parser.add_argument("--texts", type=int, default=0, help="0: all of Banking77's test set")
    parser.add_argument("--concurrency", type=int, default=2, help="MaxConcurrentTransforms")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.texts = 200
    return args


def server_alone(model_dir: Path, lines: list[bytes], concurrency: int) -> tuple[float, float]:
    """Texts/s of a fresh serving container by itself: its first pass over the texts (what a
    transform job's fresh container does) and a second, warm one."""
    spec = ServerSpec(
        "model server alone",
        "server-alone",
        [PYTHON, "-m", "model", "serve"],
        {"SAGEMAKER_BASE_DIR": str(sagemaker_base(model_dir, NAME)), "POSTWERK_BIND_HOST": HOST},
        "",
    )
    bodies = [
        b"\n".join(lines[i : i + RECORDS_PER_REQUEST])
        for i in range(0, len(lines), RECORDS_PER_REQUEST)
    ]
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    with (
        running(spec, NAME) as server,
        httpx.Client(timeout=600, trust_env=False) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):

        def send(body: bytes) -> None:
            client.post(server.url, content=body, headers=headers).raise_for_status()

        def rate() -> float:
            started = time.perf_counter()
            list(pool.map(send, bodies))
            return len(lines) / (time.perf_counter() - started)

        return rate(), rate()


def transform_job(sm, s3, model_dir: Path, lines: list[bytes], concurrency: int) -> dict:
    create_model(sm, s3, model_dir)
    share = -(-len(lines) // OBJECTS)
    for number in range(OBJECTS):
        part = lines[number * share : (number + 1) * share]
        s3.put_object(
            Bucket=BENCH_BUCKET, Key=f"archive/part-{number}.jsonl", Body=b"\n".join(part)
        )
    created = time.time()
    sm.create_transform_job(
        TransformJobName="bench",
        ModelName="bench",
        MaxConcurrentTransforms=concurrency,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BENCH_BUCKET}/archive/"}
            },
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{BENCH_BUCKET}/out",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing={"JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"},
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="bench", WaiterConfig={"Delay": 0.5, "MaxAttempts": 7200}
    )
    job = sm.describe_transform_job(TransformJobName="bench")
    if job["TransformJobStatus"] != "Completed":
        raise SystemExit(f"the transform job failed: {job.get('FailureReason')}")
    outputs = (
        s3.get_object(Bucket=BENCH_BUCKET, Key=f"out/part-{n}.jsonl.out") for n in range(OBJECTS)
    )
    written = sum(len(output["Body"].read().splitlines()) for output in outputs)
    if written != len(lines):
        raise SystemExit(f"the job wrote {written} lines for {len(lines)} records")
    end = job["TransformEndTime"].timestamp()
    return {
        "texts_per_s": len(lines) / (end - job["TransformStartTime"].timestamp()),
        "texts_per_s_from_create": len(lines) / (end - created),
        "container_start_s": job["TransformStartTime"].timestamp() - created,
    }


def main() -> None:
    args = parse_args()
    train_rows, test_rows = load_banking77(args.data)
    labels = sorted({row["category"] for row in train_rows})
    model_dir, _ = resolve_model(args, labels)
    rows = test_rows[: args.texts] if args.texts else test_rows
    lines = [json.dumps({"id": f"m-{i}", "text": r[TEXT]}).encode() for i, r in enumerate(rows)]

    alone, warm = server_alone(model_dir, lines, args.concurrency)
    state = work_dir(NAME, clean=True)
    backend = MiniStack(state, free_port())
    backend.start()
    aws_env = backend.client_environment()
    os.environ.update(aws_env)
    service, url = start_service(state / "sagemaker", free_port(), aws_env)
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = url
    try:
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        s3.create_bucket(
            Bucket=BENCH_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        job = transform_job(sm, s3, model_dir, lines, args.concurrency)
    finally:
        stop_service(service, 60)
        backend.stop()

    ratio = job["texts_per_s"] / alone
    print_table(
        f"{len(lines)} texts, {RECORDS_PER_REQUEST} per request, concurrency {args.concurrency}",
        ["target", "texts/s"],
        [
            ("model server alone, first pass", alone),
            ("model server alone, warm second pass", warm),
            ("transform job (TransformStartTime -> End)", job["texts_per_s"]),
            ("transform job (CreateTransformJob -> End)", job["texts_per_s_from_create"]),
        ],
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\ntransform job / server alone (first pass): {ratio:.3f} (>= {TARGET}: {verdict})")
    print(f"transform job / server alone (warm): {job['texts_per_s'] / warm:.3f}")
    start = job["container_start_s"]
    print(f"container start (CreateTransformJob -> TransformStartTime): {start:.1f} s")
    finish(
        NAME,
        {
            "texts": len(lines),
            "concurrency": args.concurrency,
            "model_dir": str(model_dir),
            "server_alone_texts_per_s": alone,
            "server_alone_warm_texts_per_s": warm,
            "transform_job": job,
            "ratio": ratio,
            "target": TARGET,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
