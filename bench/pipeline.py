"""The pipeline end to end on the embedded backend, against the model server alone.

Brings up MiniStack, the local SageMaker service (one replica of the model) and the event
source mapping runner under bench/work/pipeline/, deploys infra/template.yaml, and makes
realistic e-mails from Banking77 test texts (German-style and English headers, plain,
multipart/alternative, HTML-only, quoted-printable latin-1, PDF attachments).

- baseline: the model server alone, the same e-mails in batches of the mapping's BatchSize
  (50), one batch at a time (as one shard's mapping sends them), straight to the replica;
  measured before the pipeline runs and again after it, the ratio taken against the mean
  (the machine's speed drifts on a shared host; both figures are kept);
- warm-up: --warmup e-mails (default 200) through the pipeline first, so that the Lambda
  workers have started (their cold starts are reported apart: the time of the warm-up);
- saturation: --emails (default 2,000) uploaded to the raw bucket by 4 threads (presigned
  PUTs prepared beforehand: the load generator must leave the cores to the stack); throughput
  from the first upload to the last stored result, and pipeline/model as a ratio (target
  >= 0.5, issue 17), with when the uploads, ingest and classify finished (the runner's
  journal) to show the slowest stage, and the CPU milliseconds per e-mail of each part of
  the stack (MiniStack, each function's workers, the SageMaker service, the replica, this
  process with the uploads and the mapping runner);
- latency below saturation: --paced e-mails (default 200) uploaded at half the pipeline's
  saturated throughput; upload -> result stored (DynamoDB classified_at), p50 and p99
  (target p99 < 2 s);
- memory: the peak resident memory of the whole stack (MiniStack, its Lambda workers, the
  SageMaker service, its replica, and this process with the runner), sampled every 0.5 s.

While a phase runs, only the runner's journal (in this process) is watched; the results
table is scanned once the journal shows every record classified, so that the benchmark's
polling does not load the stack it measures. The machine's load average is printed and
kept with the results: on a shared machine, compare ratios of the same run.

Model: --model DIR, else bench.accuracy's, else an untrained MiniLM head (speed only).

Reproduce (from the repository root; about 5 minutes):
    python -m bench.pipeline --data ../shared/data/banking77
"""

import os
import random
import shutil
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
import urllib3

from bench.common import (
    BENCH_BUCKET,
    TEXT,
    base_parser,
    finish,
    load_banking77,
    print_table,
    work_dir,
)
from bench.invoke import deploy, replica_url
from bench.serving import free_port, resolve_model
from emulation.esm.runner import MappingRunner
from emulation.ministack import MiniStack
from emulation.sagemaker.launcher import start_service, stop_service
from postwerk import deploy as stack

NAME = "pipeline"
BATCH = 50  # the template's BatchSize
RATIO_TARGET = 0.5  # pipeline e-mails/s against the model server's (issue 17)
P99_TARGET_S = 2.0  # upload -> stored result at half of saturation


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--paced", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=200, help="e-mails before measuring")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.emails, args.paced, args.warmup = 200, 40, 50
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
        latin = all(ord(c) < 256 for c in body)  # a few texts hold a euro sign, say
        message.set_content(
            body, charset="iso-8859-1" if latin else "utf-8", cte="quoted-printable"
        )
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
    """The largest summed RSS of the given process trees, sampled in a thread every 0.5 s.

    Finding a tree's processes reads every process of the machine, so the trees are walked
    anew only every 5 s (the Lambda workers start in the warm-up); in between, only the
    known processes' RSS is read: the sampler must not load the stack it measures."""

    def __init__(self, pids: list[int]):
        self.pids, self.peak = pids, 0
        self._processes: list[psutil.Process] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _walk(self) -> None:
        processes: dict[int, psutil.Process] = {}  # by PID: MiniStack and the SageMaker
        for pid in self.pids:  # service are children of this process too (counted once)
            try:
                root = psutil.Process(pid)
                processes |= {p.pid: p for p in [root, *root.children(recursive=True)]}
            except psutil.NoSuchProcess:
                continue
        self._processes = list(processes.values())

    def _sample(self) -> None:
        samples = 0
        while not self._stop.wait(0.5):
            if samples % 10 == 0:
                self._walk()
            samples += 1
            total = 0
            for process in self._processes:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def component(process: psutil.Process, own_pid: int) -> str:
    """Which part of the stack a process is, by its command line."""
    if process.pid == own_pid:
        return "bench (uploads, mapping runner)"
    line = " ".join(process.cmdline())
    for needle, name in (
        ("postwerk-ingest", "lambda ingest"),
        ("postwerk-classify", "lambda classify"),
        ("_worker.py", "lambda other"),
        ("ministack.app", "ministack"),
        ("model serve", "model replica"),
        ("emulation.sagemaker", "sagemaker service"),
    ):
        if needle in line:
            return name
    return "other"


def cpu_seconds(pids: list[int]) -> dict[int, tuple[str, float]]:
    """(component, user + system CPU seconds) of every process in the given trees."""
    seen: dict[int, tuple[str, float]] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in tree:
            try:
                times = process.cpu_times()
                seen[process.pid] = (component(process, os.getpid()), times.user + times.system)
            except psutil.NoSuchProcess:
                continue
    return seen


def cpu_by_component(before: dict, after: dict, emails: int) -> dict[str, float]:
    """CPU milliseconds per e-mail of each component between two cpu_seconds()."""
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        spent[name] = spent.get(name, 0) + seconds - before.get(pid, (name, 0.0))[1]
    return {name: 1000 * s / emails for name, s in sorted(spent.items(), key=lambda i: -i[1])}


def model_alone(replica: str, texts: list[str], pids: list[int]) -> float:
    """model_throughput, printed with the replica's CPU time per e-mail."""
    before = cpu_seconds(pids)
    rate = model_throughput(replica, texts)
    cpu_ms = cpu_by_component(before, cpu_seconds(pids), len(texts)).get("model replica", 0)
    print(f"model server alone: {rate:.1f} e-mails/s, {cpu_ms:.1f} CPU ms per e-mail", flush=True)
    return rate


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
    """Upload times by message id; `rate` e-mails/s, or as fast as 4 threads go.

    The load generator must leave the cores to the stack: each e-mail gets a presigned PUT
    URL before the clock starts (S3's own API: a presigned PutObject is a PutObject, with the
    same notification), sent by urllib3 over kept-alive connections, which costs a third of
    the CPU of boto3's put_object."""
    s3 = boto3.client("s3")
    urls = {
        key: s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": f"incoming/{key}.eml"}, ExpiresIn=3600
        )
        for key in mails
    }
    http = urllib3.PoolManager(maxsize=4, retries=False)
    times: dict[str, float] = {}

    def put(item):
        key, raw = item
        times[key] = time.time()
        answer = http.request("PUT", urls[key], body=raw)
        if answer.status != 200:
            raise SystemExit(f"upload of {key} failed: {answer.status} {answer.data[:200]!r}")

    if rate is None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(put, mails.items()))
    else:  # on a fixed schedule, so that the rate holds whatever an upload takes
        started = time.monotonic()
        for number, item in enumerate(mails.items()):
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
            put(item)
    return times


def wait_for_results(
    runner: MappingRunner, ids: set[str], since: float, timeout: float = 1800
) -> dict[str, float]:
    """classified_at by message id, once every id has its result. Until the runner's journal
    shows as many classified records since `since` as there are ids, only the journal (in
    this process) is read: scanning the table every second would load the stack it measures."""
    deadline = time.monotonic() + timeout
    while classified_since(runner, since) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    table = boto3.resource("dynamodb").Table("postwerk-results")
    done: dict[str, float] = {}
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


def classified_since(runner: MappingRunner, since: float) -> int:
    """Kinesis records the classify mapping finished (stored or given up) since `since`."""
    return sum(
        len(invocation.sequence_numbers)
        for invocation in list(runner.invocations)
        if invocation.shard != "queue"
        and invocation.outcome != "error"
        and invocation.finished_at >= since
    )


def stage_times(runner: MappingRunner, start: float, uploaded: float) -> dict[str, float]:
    """When each stage finished its last batch, in seconds from the first upload."""
    last = {}
    for invocation in list(runner.invocations):
        if invocation.finished_at < start:  # the warm-up's
            continue
        stage = "ingest" if invocation.shard == "queue" else "classify"
        last[stage] = max(last.get(stage, 0), invocation.finished_at - start)
    return {"uploads_done_s": uploaded - start, **{f"{k}_done_s": v for k, v in last.items()}}


def fresh_state() -> Path:
    """bench/work/pipeline/ emptied but for MiniStack's venv (installing it takes a minute;
    MiniStack.install checks that it holds the pinned versions)."""
    state = work_dir(NAME)
    for child in state.iterdir():
        if child.name == "ministack-venv":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return state


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * len(ordered)))]


def main() -> None:
    args = parse_args()
    _, test_rows = load_banking77(args.data)
    labels = sorted({row["category"] for row in test_rows})
    model_dir, trained = resolve_model(args, labels)
    rng = random.Random(args.seed)
    texts = [row[TEXT] for row in test_rows]
    state = fresh_state()
    backend = MiniStack(state, free_port())
    backend.start()
    os.environ.update(backend.client_environment())
    service, url = start_service(state / "sagemaker", free_port(), backend.client_environment())
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = (
        url
    )
    stack_pids = [backend.running_pid(), service.pid, os.getpid()]
    memory = MemoryPeak(stack_pids)
    runner = None
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(
            Bucket=BENCH_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        deploy(boto3.client("sagemaker"), s3, model_dir)  # the endpoint "bench"
        archive = stack.build_package(work_dir(NAME, "build"), python_version=None)
        outputs = stack.deploy_stack(
            "postwerk-bench",
            {
                "CodeBucket": BENCH_BUCKET,
                "CodeKey": stack.upload_package(archive, BENCH_BUCKET),
                "EndpointName": "bench",
                "EmulatorMapping": "true",
                "SageMakerRuntimeEndpointUrl": url,
                "LambdaRuntime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            },
        )
        runner = MappingRunner(state / "esm").start()
        sample = [rng.choice(texts) for _ in range(args.emails)]
        mails = {f"bench-{i}@example.de": make_email(i, t, rng) for i, t in enumerate(sample)}
        warm, paced = (
            {
                f"{kind}-{i}@example.de": make_email(i, t, rng).replace(
                    b"<bench-", f"<{kind}-".encode()
                )
                for i, t in enumerate(sample[:count])
            }
            for kind, count in (("warm", args.warmup), ("paced", args.paced))
        )
        replica = replica_url(service)
        model_rates = [model_alone(replica, sample, stack_pids)]

        bucket = outputs["RawBucket"]
        warm_uploaded = upload_all(bucket, warm, rate=None)
        warm_s = max(wait_for_results(runner, set(warm), min(warm_uploaded.values())).values())
        warm_s -= min(warm_uploaded.values())
        print(f"warm-up: {len(warm)} e-mails in {warm_s:.1f} s (cold starts included)", flush=True)

        print("saturated: uploading", flush=True)
        cpu_before = cpu_seconds(stack_pids)
        uploaded = upload_all(bucket, mails, rate=None)
        start = min(uploaded.values())
        stored = wait_for_results(runner, set(mails), start)
        cpu_ms = cpu_by_component(cpu_before, cpu_seconds(stack_pids), len(mails))
        print(
            "CPU ms per e-mail: "
            + ", ".join(f"{name} {ms:.1f}" for name, ms in cpu_ms.items())
            + f"; all {sum(cpu_ms.values()):.1f}",
            flush=True,
        )
        pipeline_rate = len(mails) / (max(stored.values()) - start)
        stages = stage_times(runner, start, max(uploaded.values()))
        print(f"pipeline, saturated: {pipeline_rate:.1f} e-mails/s; {stages}", flush=True)

        paced_uploaded = upload_all(bucket, paced, rate=pipeline_rate / 2)
        paced_stored = wait_for_results(runner, set(paced), min(paced_uploaded.values()))
        latencies = [paced_stored[m] - paced_uploaded[m] for m in paced]
        model_rates.append(model_alone(replica, sample, stack_pids))  # the machine drifts
        model_rate = statistics.fmean(model_rates)
    finally:
        peak_mb = memory.stop()
        if runner is not None:
            runner.stop()
        stop_service(service, 120)
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
    ratio_met, latency_met = ratio >= RATIO_TARGET, latency["p99_s"] < P99_TARGET_S
    met = ratio_met and latency_met
    verdict = {True: "met", False: "NOT met"}
    print(
        f"\npipeline/model: x{ratio:.2f} (target >= {RATIO_TARGET}: {verdict[ratio_met]}); "
        f"p99 upload -> result {latency['p99_s']:.2f} s at half of saturation (target < "
        f"{P99_TARGET_S:g} s: {verdict[latency_met]}); peak RSS {peak_mb:.0f} MB; load average "
        f"{os.getloadavg()[0]:.2f}"
    )
    finish(
        NAME,
        {
            "emails": args.emails,
            "paced": args.paced,
            "model_dir": str(model_dir),
            "model_trained": trained,
            "model_emails_per_second": model_rate,
            "model_emails_per_second_before_after": model_rates,
            "pipeline_emails_per_second": pipeline_rate,
            "ratio": ratio,
            "ratio_target": RATIO_TARGET,
            "warmup": {"emails": args.warmup, "seconds": warm_s},
            "stages": stages,
            "cpu_ms_per_email": cpu_ms,
            "latency_below_saturation": latency,
            "p99_target_s": P99_TARGET_S,
            "targets_met": met,
            "load_average": os.getloadavg(),
            "peak_rss_mb": peak_mb,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
