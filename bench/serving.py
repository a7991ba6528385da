"""Serving under concurrent load: `python -m model serve` against a plain pipeline server.

Servers (each a subprocess on a free 127.0.0.1 port, started one at a time, always stopped):
- baseline: bench/baseline_server.py, `transformers.pipeline(top_k=3)` per request in a sync
  FastAPI endpoint, torch threads = CPU count;
- ours fp32 and ours int8: `python -m model serve`, one worker (dynamic batching, up to 64
  e-mails per forward pass), POSTWERK_QUANTIZE_INT8=false / true.

Load (this process, separate from the servers): 32 concurrent asyncio clients (httpx) send
single-e-mail requests ({"instances": [{"id", "text"}]}) built from Banking77 test texts,
a fixed number in total (default 1500) after a warm-up. Reported per server: throughput
(req/s), p50 and p99 latency, errors, ratio of req/s against the baseline, and the resident
memory (psutil RSS, child processes included) after the load; target < 600 MB per worker.

Ceiling: Predictor.predict in-process on consecutive batches of 64 test texts (fp32 and
int8), measured before any server starts; each server's req/s is shown as % of it.

Model: --model DIR; by default the one bench.accuracy trained
(bench/work/accuracy/ml/model), else the bundled MiniLM with a fresh, untrained 77-label head
(fine for speed, meaningless for accuracy) built into bench/work/serving/built-model.

Reproduce (from the repository root; a few minutes):
    python -m bench.serving --data ../shared/data/banking77
Smoke run:
    python -m bench.serving --data ../shared/data/banking77 --quick
"""

import asyncio
import gc
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    LABEL,
    PYTHON,
    REPO_ROOT,
    TEXT,
    WORK_DIR,
    base_parser,
    finish,
    load_banking77,
    predictor_pass,
    print_table,
    shuffled,
    work_dir,
)
from emulation.sagemaker.launcher import free_port
from model.console import quiet_libraries

NAME = "serving"
HOST = "127.0.0.1"
BATCH = 64  # our server's max batch, and the ceiling's batch
TRAINED_MODEL = WORK_DIR / "accuracy" / "ml" / "model"
START_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 120
RSS_TARGET_MB = 600


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a model folder (see above)")
    parser.add_argument("--requests", type=int, default=1500, help="measured requests per server")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests first")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ceiling-texts", type=int, default=1024, help="texts for the ceiling")
    parser.add_argument("--max-length", type=int, default=64, help="of a built model")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup, args.ceiling_texts = 128, 32, 192
    return args


# --- the model -----------------------------------------------------------------------------


def resolve_model(args, labels: list[str]) -> Path:
    if args.model:
        return args.model.resolve()
    if (TRAINED_MODEL / "model.safetensors").exists():
        return TRAINED_MODEL
    return build_untrained_model(work_dir(NAME, "built-model", clean=True), labels, args)


def build_untrained_model(folder: Path, labels: list[str], args) -> Path:
    """The bundled MiniLM with a fresh classification head, laid out as training saves it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from model.hyperparameters import bundled_model_path

    base = bundled_model_path()
    print(f"no trained model: building an untrained one from {base} in {folder}")
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    info = {
        "name": "bench-untrained-minilm",
        "version": "untrained",
        "max_length": args.max_length,
        "labels": labels,
    }
    (folder / "model_info.json").write_text(json.dumps(info, indent=2))
    return folder


def sagemaker_base(model_dir: Path) -> Path:
    """A SAGEMAKER_BASE_DIR whose model/ is the model folder (a symlink)."""
    base = work_dir(NAME, "ml")
    link = base / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_dir.resolve(), target_is_directory=True)
    return base


def ceiling(model_dir: Path, texts: list[str], quantize_int8: bool) -> float:
    """In-process texts/s of Predictor.predict on batches of 64: what serving could reach."""
    from model.serving.predictor import Predictor

    predictor = Predictor(model_dir, BATCH, quantize_int8=quantize_int8)
    rate = predictor_pass(predictor, texts, BATCH).texts_per_second()
    del predictor
    gc.collect()
    return rate


# --- servers -------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    slug: str  # for its log file
    command: list[str]
    env: dict[str, str]
    ceiling_key: str  # which in-process ceiling it is compared with
    port_flag: bool = False  # True: pass --port; else SAGEMAKER_BIND_TO_PORT

    def argv(self, port: int) -> list[str]:
        return [*self.command, "--port", str(port)] if self.port_flag else self.command


def server_specs(model_dir: Path) -> list[ServerSpec]:
    base = sagemaker_base(model_dir)

    def ours(quantize: bool) -> dict[str, str]:
        return {
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "POSTWERK_BIND_HOST": HOST,
            "POSTWERK_QUANTIZE_INT8": "true" if quantize else "false",
        }

    return [
        ServerSpec(
            "baseline (pipeline per request)",
            "baseline",
            [PYTHON, "-m", "bench.baseline_server", "--model", str(model_dir), "--host", HOST],
            {},
            "fp32",
            port_flag=True,
        ),
        ServerSpec("ours fp32", "ours-fp32", [PYTHON, "-m", "model", "serve"], ours(False), "fp32"),
        ServerSpec("ours int8", "ours-int8", [PYTHON, "-m", "model", "serve"], ours(True), "int8"),
    ]


@contextmanager
def running(spec: ServerSpec, port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """Start the server, wait for /ping 200, and always stop it (terminate, then kill)."""
    env = {**os.environ, **spec.env, "SAGEMAKER_BIND_TO_PORT": str(port)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            spec.argv(port),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(process, port, log_path)
            yield process
        finally:
            stop(process)


def wait_ready(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log_path)}")
        try:
            if httpx.get(f"http://{HOST}:{port}/ping", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {START_TIMEOUT_S} s:\n{tail(log_path)}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def resident_mb(pid: int) -> float:
    """RSS of the process and all its descendants (uvicorn workers are children)."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes) / 2**20


# --- load ----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float


async def send(client: httpx.AsyncClient, url: str, number: int, text: str) -> tuple[bool, float]:
    body = {"instances": [{"id": str(number), "text": text}]}
    started = time.perf_counter()
    try:
        response = await client.post(url, json=body)
        ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    return ok, time.perf_counter() - started


async def load(url: str, texts: list[str], total: int, concurrency: int) -> LoadResult:
    """`total` requests from `concurrency` clients, each sending its next one on an answer."""
    latencies: list[float] = []
    errors = 0
    next_number = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for number in next_number:  # shared iterator: the clients split the requests
            ok, seconds = await send(client, url, number, texts[number % len(texts)])
            latencies.append(seconds)
            errors += not ok

    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(
        requests=total,
        errors=errors,
        seconds=elapsed,
        requests_per_second=total / elapsed,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
    )


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def measure(spec: ServerSpec, texts: list[str], args) -> dict[str, Any]:
    port = free_port()
    log_path = work_dir(NAME) / f"{spec.slug}.log"
    print(f"\n{spec.name}: starting on {HOST}:{port} (log {log_path.relative_to(REPO_ROOT)})")
    with running(spec, port, log_path) as process:
        url = f"http://{HOST}:{port}/invocations"
        asyncio.run(load(url, texts[::-1], args.warmup, args.concurrency))
        result = asyncio.run(load(url, texts, args.requests, args.concurrency))
        rss = resident_mb(process.pid)
    print(
        f"{spec.name}: {result.requests_per_second:.1f} req/s, p50 {result.p50_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms, {result.errors} errors, RSS {rss:.0f} MB"
    )
    return asdict(result) | {"rss_mb": rss, "workers": 1}


def main() -> None:
    args = parse_args()
    quiet_libraries()
    train_rows, test_rows = load_banking77(args.data)
    texts = [row[TEXT] for row in shuffled(test_rows, args.seed)]
    model_dir = resolve_model(args, sorted({row[LABEL] for row in train_rows}))
    print(f"model: {model_dir}")

    ceilings = {
        "fp32": ceiling(model_dir, texts[: args.ceiling_texts], quantize_int8=False),
        "int8": ceiling(model_dir, texts[: args.ceiling_texts], quantize_int8=True),
    }
    rates = ", ".join(f"{key} {rate:.1f} texts/s" for key, rate in ceilings.items())
    print(f"ceiling (in-process, batch {BATCH}): {rates}")

    specs = server_specs(model_dir)
    results = {spec.name: measure(spec, texts, args) for spec in specs}
    baseline_rate = results[specs[0].name]["requests_per_second"]
    for spec in specs:
        result, top = results[spec.name], ceilings[spec.ceiling_key]
        result["ratio_vs_baseline"] = result["requests_per_second"] / baseline_rate
        result["ceiling_texts_per_second"] = top
        result["percent_of_ceiling"] = 100 * result["requests_per_second"] / top

    print_table(
        f"Serving, {args.concurrency} concurrent clients, {args.requests} single-e-mail requests",
        ["server", "req/s", "x baseline", "p50 ms", "p99 ms", "% ceiling", "RSS MB", "errors"],
        [
            (name, r["requests_per_second"], r["ratio_vs_baseline"], r["p50_ms"], r["p99_ms"],
             r["percent_of_ceiling"], r["rss_mb"], r["errors"])
            for name, r in results.items()
        ] + [
            (f"ceiling {key} (in-process)", rate, None, None, None, 100.0, None, None)
            for key, rate in ceilings.items()
        ],
    )  # fmt: skip
    ours = [spec.name for spec in specs if spec.slug.startswith("ours")]
    over = [name for name in ours if results[name]["rss_mb"] > RSS_TARGET_MB]
    verdict = f"over: {', '.join(over)}" if over else "met"
    print(f"memory target for our server, < {RSS_TARGET_MB} MB per worker: {verdict}")
    finish(
        NAME,
        {
            "model_dir": str(model_dir),
            "load": {
                "concurrency": args.concurrency,
                "requests": args.requests,
                "warmup": args.warmup,
                "request": "one e-mail per request, Banking77 test texts",
            },
            "ceiling_texts_per_second": ceilings,
            "ceiling_batch": BATCH,
            "servers": results,
            "rss_target_mb_per_worker": RSS_TARGET_MB,
        },
        args.quick,
    )


if __name__ == "__main__":
    main()
