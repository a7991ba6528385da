"""Serving under concurrent load: `python -m model serve` against a plain pipeline server.

Workloads (each request one e-mail):
- short: Banking77 test texts ({"id", "text"}), the model's own max_length;
- email: subject + body of ~200 words ({"id", "subject", "body"}; a Banking77 text as the
  subject, the texts after it as the body), max_length 128 (training's default).

Servers (subprocesses on free 127.0.0.1 ports, one worker each, all stopped at the end):
- baseline: bench/baseline_server.py, `transformers.pipeline(top_k=3)` per request in an
  async FastAPI handler, truncating at the same max_length, torch threads = CPU count;
- ours: `python -m model serve` (dynamic batching up to 64 e-mails, OpenVINO passes of 16),
  engine OpenVINO as it serves by default (the int8 IR where training wrote and checked
  one, decision 0013), OpenVINO with the fp32 IR forced (POSTWERK_PRECISION=fp32), and,
  as the figure before it, torch int8.

Load: wrk (`apt-get install wrk`), one thread, 32 connections, with bench/wrk/bodies.lua
sending the workload's bodies in turn: it leaves the cores to the server (its CPU time is
reported). The runs are interleaved (baseline, ours, ... per repeat) so that noise from
other work on the machine hits every server alike; each figure is the median over the
repeats, with the spread of req/s. A Python client (httpx, asyncio) runs once per server as
a cross-check, its own CPU time reported too.

Ceiling: each engine in-process (bench/engines.py: Predictor.predict on consecutive
batches of 64, ONNX Runtime too when installed); each server's req/s is shown as % of
its own engine's. On the short workload with a trained model: test accuracy per engine.

Model: --model DIR; by default the one bench.accuracy trained
(bench/work/accuracy/ml/model), else the bundled MiniLM with a fresh, untrained 77-label head
(fine for speed, meaningless for accuracy) built into bench/work/serving/built-model.

Reproduce (from the repository root; about 15 minutes):
    python -m bench.serving --data ../shared/data/banking77
Smoke run:
    python -m bench.serving --data ../shared/data/banking77 --quick
"""

import asyncio
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    LABEL,
    PYTHON,
    REPO_ROOT,
    TEXT,
    WORK_DIR,
    Row,
    accuracy,
    base_parser,
    finish,
    load_banking77,
    machine_info,
    print_table,
    shuffled,
    work_dir,
)
from bench.engines import engine_passes
from emulation.processes import free_port, process_tree, stop_processes
from model.console import quiet_libraries
from model.data import email_text

NAME = "serving"
HOST = "127.0.0.1"
BATCH = 64  # our server's max batch, and the ceiling's batch
TRAINED_MODEL = WORK_DIR / "accuracy" / "ml" / "model"
WRK_SCRIPT = REPO_ROOT / "bench" / "wrk" / "bodies.lua"
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 15
REQUEST_TIMEOUT_S = 120
RSS_TARGET_MB = 600
EMAIL_WORDS = 200
EMAIL_MAX_LENGTH = 128  # training's default max_length
TARGETS = {"short": 5.0, "email": 3.0}  # x the baseline's req/s, with p99 no worse


def parse_args():
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a model folder (see above)")
    parser.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk before each")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per server")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cross-check", type=int, default=300, help="Python client requests")
    parser.add_argument("--ceiling-texts", type=int, default=3080, help="short texts, in-process")
    parser.add_argument("--max-length", type=int, default=64, help="of a built model")
    parser.add_argument("--workloads", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--note", default=None, help="recorded and reported with the results")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.repeats = 5, 1, 1
        args.cross_check, args.ceiling_texts = 64, 192
    return args


# --- the model and the workloads -----------------------------------------------------------


def resolve_model(args, labels: list[str]) -> tuple[Path, bool]:
    """The model folder, and whether it was trained (its accuracy means something)."""
    if args.model:
        return args.model.resolve(), True
    if (TRAINED_MODEL / "model.safetensors").exists():
        return TRAINED_MODEL, True
    return build_untrained_model(work_dir(NAME, "built-model", clean=True), labels, args), False


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


def with_max_length(model_dir: Path, max_length: int) -> Path:
    """A copy of the model folder (weights and OpenVINO IRs linked, not copied) that truncates
    at max_length."""
    folder = work_dir(NAME, f"model-max-length-{max_length}", clean=True)
    for path in model_dir.iterdir():
        if path.name != "model_info.json" and not path.name.startswith("."):
            (folder / path.name).symlink_to(path.resolve())
    info = json.loads((model_dir / "model_info.json").read_text())
    (folder / "model_info.json").write_text(json.dumps(info | {"max_length": max_length}))
    return folder


@dataclass
class Workload:
    name: str
    model_dir: Path
    bodies: list[dict]  # one request each
    texts: list[str]  # what the model reads of each, for the ceilings
    truth: list[str] | None = None  # labels, for accuracy

    def write_bodies(self) -> Path:
        path = work_dir(NAME) / f"{self.name}-bodies.jsonl"
        path.write_text("".join(json.dumps(body) + "\n" for body in self.bodies))
        return path


def short_workload(model_dir: Path, rows: list[Row]) -> Workload:
    bodies = [{"instances": [{"id": str(i), "text": row[TEXT]}]} for i, row in enumerate(rows)]
    return Workload("short", model_dir, bodies, [r[TEXT] for r in rows], [r[LABEL] for r in rows])


def email_workload(model_dir: Path, rows: list[Row], count: int = 512) -> Workload:
    """Subject: one text; body: the texts after it, up to about EMAIL_WORDS words."""
    texts = [row[TEXT] for row in rows]
    bodies, model_texts = [], []
    for i in range(count):
        subject, body, words = texts[i % len(texts)], [], 0
        for text in texts[i + 1 :] + texts:
            if words >= EMAIL_WORDS:
                break
            body.append(text)
            words += len(text.split())
        instance = {"id": str(i), "subject": subject, "body": " ".join(body)}
        bodies.append({"instances": [instance]})
        model_texts.append(email_text(instance["subject"], instance["body"]))
    folder = with_max_length(model_dir, EMAIL_MAX_LENGTH)
    return Workload("email", folder, bodies, model_texts)


def sagemaker_base(model_dir: Path, name: str) -> Path:
    """A SAGEMAKER_BASE_DIR whose model/ is the model folder (a symlink)."""
    base = work_dir(NAME, f"ml-{name}")
    link = base / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_dir.resolve(), target_is_directory=True)
    return base


# --- servers -------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    slug: str  # for its log file
    command: list[str]
    env: dict[str, str]
    ceiling_key: str  # which in-process engine it is compared with
    port_flag: bool = False  # True: pass --port; else SAGEMAKER_BIND_TO_PORT

    def argv(self, port: int) -> list[str]:
        return [*self.command, "--port", str(port)] if self.port_flag else self.command


BASELINE = "baseline (pipeline per request)"
OURS = "ours (openvino)"  # the default: the int8 IR where training wrote and checked one
FP32 = "ours (openvino, fp32 forced)"
BEFORE = "ours (torch int8, before)"


def server_specs(model_dir: Path, workload: str) -> list[ServerSpec]:
    base = sagemaker_base(model_dir, workload)

    def ours(engine: str, precision: str = "auto") -> dict[str, str]:
        return {
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "POSTWERK_BIND_HOST": HOST,
            "POSTWERK_ENGINE": engine,
            "POSTWERK_PRECISION": precision,
            "POSTWERK_QUANTIZE_INT8": "true",
        }

    serve = [PYTHON, "-m", "model", "serve"]
    baseline = [PYTHON, "-m", "bench.baseline_server", "--model", str(model_dir), "--host", HOST]
    return [
        ServerSpec(BASELINE, "baseline", baseline, {}, "torch fp32", port_flag=True),
        ServerSpec(OURS, "ours-openvino", serve, ours("openvino"), "openvino"),
        ServerSpec(FP32, "ours-openvino-fp32", serve, ours("openvino", "fp32"), "openvino fp32"),
        ServerSpec(BEFORE, "ours-torch-int8", serve, ours("torch"), "torch int8"),
    ]


@dataclass
class Server:
    spec: ServerSpec
    process: subprocess.Popen
    url: str
    log_path: Path

    def engine_line(self) -> str | None:
        """What the serve log says serves, and why (model/serving/engine.py); None: torch."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return next((line.split(" engine ", 1)[1] for line in lines if " engine " in line), None)


@contextmanager
def running(spec: ServerSpec, workload: str) -> Iterator[Server]:
    """Start the server, wait for /ping 200, and always stop it (SIGTERM, then SIGKILL to it
    and its workers after STOP_TIMEOUT_S)."""
    port = free_port()
    log_path = work_dir(NAME) / f"{workload}-{spec.slug}.log"
    print(f"{spec.name}: starting on {HOST}:{port} (log {log_path.relative_to(REPO_ROOT)})")
    env = {**os.environ, **spec.env, "SAGEMAKER_BIND_TO_PORT": str(port)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            spec.argv(port), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(process, port, log_path)
            yield Server(spec, process, f"http://{HOST}:{port}/invocations", log_path)
        finally:
            stop_processes(process_tree(process), STOP_TIMEOUT_S, sigterm=[process])


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


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def resident_mb(pid: int) -> float:
    """RSS of the process and all its descendants (uvicorn workers are children)."""
    return sum(p.memory_info().rss for p in process_tree(pid)) / 2**20


def cpu_seconds(pid: int) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in process_tree(pid))


# --- load ----------------------------------------------------------------------------------


def wrk_path() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench.serving needs wrk: apt-get install -y wrk (brew install wrk)")
    return wrk


def wrk_command(url: str, bodies: Path, seconds: int, concurrency: int) -> list[str]:
    return [
        wrk_path(), "-t1", f"-c{concurrency}", f"-d{seconds}s",
        "--timeout", f"{REQUEST_TIMEOUT_S}s", "-s", str(WRK_SCRIPT), url, "--", str(bodies),
    ]  # fmt: skip


def drain(server: Server) -> None:
    """Wait for what wrk left in flight: the baseline answers /ping only after it."""
    ping = server.url.removesuffix("/invocations") + "/ping"
    httpx.get(ping, timeout=REQUEST_TIMEOUT_S).raise_for_status()


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_run(server: Server, bodies: Path, seconds: int, concurrency: int) -> dict[str, Any]:
    """One wrk run; its summary, the server's and wrk's own CPU time."""
    command = wrk_command(server.url, bodies, seconds, concurrency)
    server_cpu, wrk_cpu = cpu_seconds(server.process.pid), children_cpu_seconds()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    wrk_cpu, server_cpu = (
        children_cpu_seconds() - wrk_cpu,
        cpu_seconds(server.process.pid) - server_cpu,
    )
    summary_line = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not summary_line:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    summary = json.loads(summary_line[-1])
    drain(server)
    seconds_run = summary["duration_us"] / 1e6
    return {
        "requests": summary["requests"],
        "errors": sum(value for key, value in summary.items() if key.startswith("errors")),
        "requests_per_second": summary["requests"] / seconds_run,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "mean_ms": summary["mean_us"] / 1000,
        "server_cpu_seconds_per_request": server_cpu / max(1, summary["requests"]),
        "load_generator_cpu_share": wrk_cpu / seconds_run,  # of one core
    }


async def python_client(url: str, bodies: list[dict], total: int, concurrency: int) -> dict:
    """The cross-check: `total` requests from `concurrency` asyncio clients (httpx)."""
    latencies: list[float] = []
    errors = 0
    numbers = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for number in numbers:  # shared iterator: the clients split the requests
            started = time.perf_counter()
            try:
                ok = (await client.post(url, json=bodies[number % len(bodies)])).status_code
            except httpx.HTTPError:
                ok = 0
            latencies.append(time.perf_counter() - started)
            errors += ok != 200

    cpu = time.process_time()
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": total,
        "errors": errors,
        "requests_per_second": total / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "load_generator_cpu_share": (time.process_time() - cpu) / elapsed,
    }


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- one workload --------------------------------------------------------------------------


def measure_workload(workload: Workload, args) -> dict[str, Any]:
    print(f"\n=== workload {workload.name}: {len(workload.bodies)} distinct requests")
    passes = engine_passes(
        workload.model_dir,
        workload.texts[: args.ceiling_texts],
        BATCH,
        os.cpu_count() or 1,
        work_dir(NAME, f"onnx-{workload.name}", clean=True),
    )
    engines = {name: {"texts_per_second": p.texts_per_second()} for name, p in passes.items()}
    if workload.truth:
        truth = workload.truth[: args.ceiling_texts]
        for name, inference in passes.items():
            engines[name]["accuracy"] = accuracy(inference.labels, truth)
    bodies = workload.write_bodies()
    runs: dict[str, list[dict]] = {}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running(spec, workload.name))
            for spec in server_specs(workload.model_dir, workload.name)
        ]
        for server in servers:
            wrk_run(server, bodies, args.warmup, args.concurrency)
        for repeat in range(args.repeats):
            for server in servers:  # interleaved: noise hits every server alike
                run = wrk_run(server, bodies, args.duration, args.concurrency)
                runs.setdefault(server.spec.name, []).append(run)
                print(
                    f"  {repeat + 1}/{args.repeats} {server.spec.name}: "
                    f"{run['requests_per_second']:.1f} req/s, p99 {run['p99_ms']:.0f} ms"
                )
        results = {
            server.spec.name: summarise(server, runs[server.spec.name], engines, workload, args)
            for server in servers
        }
    baseline_rate = results[BASELINE]["requests_per_second"]
    if not baseline_rate:
        raise RuntimeError("the baseline answered no request in time: try a longer --duration")
    for result in results.values():
        result["ratio_vs_baseline"] = result["requests_per_second"] / baseline_rate
    return {"engines": engines, "servers": results, "verdict": verdict(workload.name, results)}


def summarise(server: Server, runs: list[dict], engines: dict, workload: Workload, args) -> dict:
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    rates = [run["requests_per_second"] for run in runs]
    ceiling = engines[server.spec.ceiling_key]["texts_per_second"]
    cross_check = asyncio.run(
        python_client(server.url, workload.bodies, args.cross_check, args.concurrency)
    )
    return {
        "requests_per_second": median("requests_per_second"),
        "requests_per_second_range": [min(rates), max(rates)],
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "errors": sum(run["errors"] for run in runs),
        "server_cpu_ms_per_request": 1000 * median("server_cpu_seconds_per_request"),
        "load_generator_cpu_share": median("load_generator_cpu_share"),
        "engine": server.spec.ceiling_key,
        "served_engine": server.engine_line(),
        "ceiling_texts_per_second": ceiling,
        "percent_of_ceiling": 100 * median("requests_per_second") / ceiling,
        "rss_mb": resident_mb(server.process.pid),
        "runs": runs,
        "python_client": cross_check,
    }


def verdict(workload: str, results: dict[str, dict]) -> dict[str, Any]:
    ours, baseline = results[OURS], results[BASELINE]
    return {
        "target_ratio": TARGETS[workload],
        "ratio": ours["ratio_vs_baseline"],
        "ratio_met": ours["ratio_vs_baseline"] >= TARGETS[workload],
        "p99_met": ours["p99_ms"] <= baseline["p99_ms"],
        "rss_met": ours["rss_mb"] < RSS_TARGET_MB,
    }


# --- report --------------------------------------------------------------------------------


def print_workload(name: str, measured: dict[str, Any], args, cpu: str) -> None:
    print_table(
        f"Serving, {name} texts: {args.concurrency} connections (wrk), median of "
        f"{args.repeats} interleaved {args.duration} s runs",
        ["server", "req/s", "range", "x baseline", "p50 ms", "p99 ms", "% ceiling",
         "CPU ms/req", "RSS MB", "wrk CPU", "errors", "py client req/s"],
        [
            (server, r["requests_per_second"],
             "{:.0f}-{:.0f}".format(*r["requests_per_second_range"]), r["ratio_vs_baseline"],
             r["p50_ms"], r["p99_ms"], r["percent_of_ceiling"], r["server_cpu_ms_per_request"],
             r["rss_mb"], f"{r['load_generator_cpu_share']:.3f} core", r["errors"],
             r["python_client"]["requests_per_second"])
            for server, r in measured["servers"].items()
        ],
    )  # fmt: skip
    print_table(
        f"In-process engines, {name} texts, batches of {BATCH}",
        ["engine", "texts/s", "accuracy"],
        [(e, r["texts_per_second"], r.get("accuracy")) for e, r in measured["engines"].items()],
    )
    for server, r in measured["servers"].items():
        if r["served_engine"]:
            print(f"{server} served {r['served_engine']}")
    v = measured["verdict"]
    print(
        f"target {name} on {cpu}: >= x{v['target_ratio']:g} the baseline's req/s: "
        f"x{v['ratio']:.2f} "
        f"({'met' if v['ratio_met'] else 'NOT met'}); p99 <= the baseline's: "
        f"{'met' if v['p99_met'] else 'NOT met'}; RSS < {RSS_TARGET_MB} MB: "
        f"{'met' if v['rss_met'] else 'NOT met'}"
    )


def main() -> None:
    args = parse_args()
    quiet_libraries()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # an import turns INFO logs on
    wrk_path()  # fail early when it is missing
    train_rows, test_rows = load_banking77(args.data)
    rows = shuffled(test_rows, args.seed)
    model_dir, trained = resolve_model(args, sorted({row[LABEL] for row in train_rows}))
    print(f"model: {model_dir}{'' if trained else ' (untrained: accuracy means nothing)'}")
    workloads = {
        "short": lambda: short_workload(model_dir, rows),
        "email": lambda: email_workload(model_dir, rows),
    }
    measured = {name: measure_workload(workloads[name](), args) for name in args.workloads}
    machine = machine_info()
    cpu = f"{machine['cpu_model']} ({', '.join(machine['cpu_features'])})"
    for name, result in measured.items():
        print_workload(name, result, args, cpu)
        if not trained:
            for engine in result["engines"].values():
                engine.pop("accuracy", None)
    finish(
        NAME,
        {
            "model_dir": str(model_dir),
            "trained_model": trained,
            "load": {
                "generator": "wrk -t1 (bench/wrk/bodies.lua), Python httpx client as cross-check",
                "concurrency": args.concurrency,
                "duration_seconds": args.duration,
                "repeats": args.repeats,
                "request": "one e-mail per request",
                "email_words": EMAIL_WORDS,
                "email_max_length": EMAIL_MAX_LENGTH,
            },
            "workloads": measured,
            "rss_target_mb_per_worker": RSS_TARGET_MB,
            "note": args.note,
        },
        args.quick,
        per_cpu=True,  # the engine's advantage depends on the processor family
    )


if __name__ == "__main__":
    main()
