"""The pipeline end to end on the embedded backend, against the model server alone.

Brings up MiniStack, the local SageMaker service (one replica of the model) and the event
source mapping runner under bench/work/pipeline/, deploys infra/template.yaml, and makes
realistic e-mails from Banking77 test texts (German-style and English headers, plain,
multipart/alternative, HTML-only, quoted-printable latin-1, PDF attachments).

- baseline: the model server alone, the same e-mails in batches of the mapping's BatchSize
  (50), one batch at a time (as one shard's mapping sends them), straight to the replica;
- saturation: --emails (default 2,000) uploaded to the raw bucket by 4 threads (MiniStack
  starts a ~50 MB worker per concurrent invoke, so uploads are bounded); throughput from the
  first upload to the last stored result, and pipeline/model as a ratio (target >= 0.8),
  with when the uploads, ingest and classify finished (the runner's journal) to show the
  slowest stage;
- latency below saturation: --paced e-mails (default 200) uploaded at half the model's
  throughput; upload -> result stored (DynamoDB classified_at), p50 and p99 (target p99 < 2 s);
- memory: the peak resident memory of the whole stack (MiniStack, its Lambda workers, the
  SageMaker service, its replica, and this process with the runner), sampled every 0.5 s.

Model: --model DIR, else bench.accuracy's, else an untrained MiniLM head (speed only).

Reproduce (from the repository root; about 10 minutes):
    python -m bench.pipeline --data ../shared/data/banking77
"""

import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import boto3
import httpx
import psutil

from bench.common import TEXT, base_parser, finish, load_banking77, print_table, work_dir
from bench.invoke import BUCKET, deploy, replica_url
from bench.serving import free_port, resolve_model
from emulation.esm.runner import MappingRunner
from emulation.ministack import MiniStack
from emulation.sagemaker.launcher import start_service
from postwerk import deploy as stack

NAME = "pipeline"
BATCH = 50  # the template's BatchSize


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--paced", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.emails, args.paced = 200, 40
    return args


def make_email(i: int, text: str, rng: random.Random) -> bytes:
    message = EmailMessage()
    message["From"] = f"Kundin {i} <kundin{i}@example.de>"
    message["To"] = "service@example.com"
    message["Subject"] = " ".join(text.split())[:60]  # some texts hold line breaks
    message["Message-ID"] = f"<bench-{i}@example.de>"
    message["Date"] = "Fri, 27 Nov 2026 09:00:00 +0100"
    body = f"Hello,\n\n{text}\n\nBest regards\nCustomer {i}\n\nOn Mon, support wrote:\n> earlier"
    style = rng.randrange(4)
    if style == 1:
        message.set_content(body)
        message.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    elif style == 2:
        message.set_content(f"<html><body><p>{text}</p></body></html>", subtype="html")
    elif style == 3:
        message.set_content(body, charset="iso-8859-1", cte="quoted-printable")
        message.add_attachment(
            b"%PDF-1.7 " + bytes(rng.randrange(256) for _ in range(20_000)),
            maintype="application",
            subtype="pdf",
            filename="scan.pdf",
        )
    else:
        message.set_content(body)
    return message.as_bytes()


class MemoryPeak:
    """The largest summed RSS of the given process trees, sampled in a thread."""

    def __init__(self, pids: list[int]):
        self.pids, self.peak = pids, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            total = 0
            for pid in self.pids:
                try:
                    root = psutil.Process(pid)
                    for process in [root, *root.children(recursive=True)]:
                        total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def model_throughput(replica: str, texts: list[str]) -> float:
    """E-mails/s of the model server alone: batches of BATCH, one at a time."""
    started = time.perf_counter()
    with httpx.Client(trust_env=False, timeout=120) as client:
        for start in range(0, len(texts), BATCH):
            instances = [
                {"id": str(i), "body": t} for i, t in enumerate(texts[start : start + BATCH])
            ]
            client.post(f"{replica}/invocations", json={"instances": instances}).raise_for_status()
    return len(texts) / (time.perf_counter() - started)


def upload_all(bucket: str, mails: dict[str, bytes], rate: float | None) -> dict[str, float]:
    """Upload times by message id; `rate` e-mails/s, or as fast as 4 threads go."""
    s3 = boto3.client("s3")
    times: dict[str, float] = {}

    def put(item):
        key, raw = item
        times[key] = time.time()
        s3.put_object(Bucket=bucket, Key=f"incoming/{key}.eml", Body=raw)

    if rate is None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, mails.items()))
    else:
        for item in mails.items():
            put(item)
            time.sleep(1 / rate)
    return times


def wait_for_results(ids: set[str], timeout: float = 1800) -> dict[str, float]:
    """classified_at by message id, once every id has its result."""
    table = boto3.resource("dynamodb").Table("postwerk-results")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items, arguments = [], {"ConsistentRead": True}
        while True:
            page = table.scan(**arguments)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        done = {
            i["message_id"]: datetime.fromisoformat(i["classified_at"]).timestamp()
            for i in items
            if i["message_id"] in ids
        }
        if len(done) == len(ids):
            return done
        time.sleep(1)
    raise SystemExit(f"only {len(done)} of {len(ids)} results after {timeout} s")


def stage_times(runner: MappingRunner, start: float, uploaded: float) -> dict[str, float]:
    """When each stage finished its last batch, in seconds from the first upload."""
    last = {}
    for invocation in runner.invocations:
        stage = "ingest" if invocation.shard == "queue" else "classify"
        last[stage] = max(last.get(stage, 0), invocation.finished_at - start)
    return {"uploads_done_s": uploaded - start, **{f"{k}_done_s": v for k, v in last.items()}}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * len(ordered)))]


def main() -> None:
    args = parse_args()
    _, test_rows = load_banking77(args.data)
    labels = sorted({row["category"] for row in test_rows})
    model_dir = resolve_model(args, labels)
    rng = random.Random(args.seed)
    texts = [row[TEXT] for row in test_rows]
    state = work_dir(NAME, clean=True)
    backend = MiniStack(state, free_port())
    backend.start()
    os.environ.update(backend.client_environment())
    service, url = start_service(state / "sagemaker", free_port(), backend.client_environment())
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = (
        url
    )
    memory = MemoryPeak([backend.running_pid(), service.pid, os.getpid()])
    runner = None
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        deploy(boto3.client("sagemaker"), s3, model_dir)  # the endpoint "bench"
        archive = stack.build_package(work_dir(NAME, "build"), python_version=None)
        outputs = stack.deploy_stack(
            "postwerk-bench",
            {
                "CodeBucket": BUCKET,
                "CodeKey": stack.upload_package(archive, BUCKET),
                "EndpointName": "bench",
                "EmulatorMapping": "true",
                "SageMakerRuntimeEndpointUrl": url,
                "LambdaRuntime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            },
        )
        runner = MappingRunner(state / "esm").start()
        sample = [rng.choice(texts) for _ in range(args.emails)]
        model_rate = model_throughput(replica_url(service), sample)
        print(f"model server alone: {model_rate:.1f} e-mails/s")

        mails = {f"bench-{i}@example.de": make_email(i, t, rng) for i, t in enumerate(sample)}
        uploaded = upload_all(outputs["RawBucket"], mails, rate=None)
        stored = wait_for_results(set(mails))
        start = min(uploaded.values())
        pipeline_rate = len(mails) / (max(stored.values()) - start)
        stages = stage_times(runner, start, max(uploaded.values()))
        print(f"pipeline, saturated: {pipeline_rate:.1f} e-mails/s; {stages}")

        paced = {
            f"paced-{i}@example.de": make_email(i, t, rng).replace(b"<bench-", b"<paced-")
            for i, t in enumerate(sample[: args.paced])
        }
        paced_uploaded = upload_all(outputs["RawBucket"], paced, rate=pipeline_rate / 2)
        paced_stored = wait_for_results(set(paced))
        latencies = [paced_stored[m] - paced_uploaded[m] for m in paced]
    finally:
        peak_mb = memory.stop()
        if runner is not None:
            runner.stop()
        service.terminate()
        service.wait(120)
        backend.stop()

    ratio = pipeline_rate / model_rate
    latency = {"p50_s": statistics.median(latencies), "p99_s": percentile(latencies, 0.99)}
    print_table(
        f"{args.emails} e-mails saturated, {args.paced} paced at {pipeline_rate / 2:.0f}/s",
        ["what", "e-mails/s", "ratio", "p50 s", "p99 s", "peak RSS MB"],
        [
            ("model server alone (baseline)", model_rate, 1.0, None, None, None),
            ("pipeline", pipeline_rate, ratio, latency["p50_s"], latency["p99_s"], peak_mb),
        ],
    )
    print(
        f"\npipeline/model: x{ratio:.2f} (target >= 0.8); p99 upload -> result "
        f"{latency['p99_s']:.2f} s below saturation (target < 2 s); peak RSS {peak_mb:.0f} MB "
        "(target < 4096)"
    )
    finish(
        NAME,
        {
            "emails": args.emails,
            "paced": args.paced,
            "model_dir": str(model_dir),
            "model_emails_per_second": model_rate,
            "pipeline_emails_per_second": pipeline_rate,
            "ratio": ratio,
            "stages": stages,
            "latency_below_saturation": latency,
            "peak_rss_mb": peak_mb,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
