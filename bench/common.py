"""What the benchmarks share: Banking77 data, SageMaker job folders, tracked subprocesses,
in-process inference timing, and results (JSON under bench/results/, a table on stdout).

Scratch files (job folders, models, logs) live under bench/work/, which git ignores.
"""

import argparse
import csv
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulation.processes import process_tree, stop_processes

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
WORK_DIR = BENCH_DIR / "work"  # git-ignored scratch space
RESULTS_DIR = BENCH_DIR / "results"  # committed results of full runs
QUICK_RESULTS_DIR = WORK_DIR / "results"  # --quick smoke runs never overwrite real results

PYTHON = sys.executable  # the venv's interpreter, for subprocesses
TEXT, LABEL = "text", "category"  # Banking77's CSV columns
METRIC_LINE = re.compile(r"(\w+)=([-+0-9.eE]+|nan);")

Row = dict[str, str]


# --- command line --------------------------------------------------------------------------


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: --data, --quick, --seed."""
    parser = argparse.ArgumentParser(
        description=(description or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("BANKING77", "../shared/data/banking77")),
        help="folder with Banking77's train.csv and test.csv (columns text,category)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny smoke run (seconds); results to bench/work/"
    )
    parser.add_argument("--seed", type=int, default=42)
    return parser


def add_training_flags(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The fine-tuning settings both training benchmarks take."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)


def training_hyperparameters(args, **extra: Any) -> dict[str, Any]:
    """hyperparameters.json for `python -m model train` on Banking77's CSV columns. The
    benchmarks measure the fine-tuned transformer, so it is the only model trained
    (bench.quality asks for model_selection=best)."""
    return {
        "model_selection": "transformer",
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "text_column": TEXT,
        "label_column": LABEL,
        **extra,
    }


def reproduce_command(name: str) -> str:
    """The command line that reproduces this run (from the repository root)."""
    return shlex.join(["python", "-m", f"bench.{name}", *sys.argv[1:]])


# --- scratch folders -----------------------------------------------------------------------


def work_dir(*parts: str, clean: bool = False) -> Path:
    """A folder under bench/work/ (git-ignored); `clean` empties it first."""
    path = WORK_DIR.joinpath(*parts)
    if clean and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- data ----------------------------------------------------------------------------------


def read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as rows:
        return list(csv.DictReader(rows))


def load_banking77(data_dir: Path) -> tuple[list[Row], list[Row]]:
    """(train, test) rows of Banking77; exits with a clear message if the data is missing."""
    paths = [data_dir / "train.csv", data_dir / "test.csv"]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        sys.exit(f"Banking77 not found: missing {', '.join(missing)} (pass --data FOLDER)")
    train, test = (read_csv(path) for path in paths)
    for path, rows in zip(paths, (train, test), strict=True):
        if not rows or not {TEXT, LABEL} <= rows[0].keys():
            sys.exit(f"{path} must have the columns {TEXT},{LABEL}")
    return train, test


def stratified_sample(rows: Sequence[Row], n: int | None, seed: int) -> list[Row]:
    """n rows (all if None or too many), taken round-robin across labels: every label is
    represented as soon as n >= the number of labels. Deterministic for a seed."""
    if n is None or n >= len(rows):
        return list(rows)
    rng = random.Random(seed)
    by_label: dict[str, list[Row]] = {}
    for row in rows:
        by_label.setdefault(row[LABEL], []).append(row)
    for group in by_label.values():
        rng.shuffle(group)
    picked: list[Row] = []
    depth = 0
    while len(picked) < n:
        layer = [group[depth] for group in by_label.values() if depth < len(group)]
        picked += layer[: n - len(picked)]
        depth += 1
    rng.shuffle(picked)
    return picked


def shuffled(items: Sequence[Any], seed: int) -> list[Any]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


# --- SageMaker training jobs ---------------------------------------------------------------


def layout_job(base: Path, hyperparameters: dict[str, Any], channels: dict[str, list[Row]]) -> Path:
    """A fresh SageMaker tree at `base`: config files and one CSV per channel.

    The folder is emptied first: a leftover checkpoints/ would make training resume.
    Hyperparameter values become strings, as SageMaker passes them.
    """
    if base.exists():
        shutil.rmtree(base)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    values = {name: str(value) for name, value in hyperparameters.items()}
    (config / "hyperparameters.json").write_text(json.dumps(values, indent=2))
    data_config = {name: {"ContentType": "text/csv"} for name in channels}
    (config / "inputdataconfig.json").write_text(json.dumps(data_config, indent=2))
    for name, rows in channels.items():
        folder = base / "input" / "data" / name
        folder.mkdir(parents=True)
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=[TEXT, LABEL], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return base


def parse_metric_lines(lines: Sequence[str]) -> list[dict[str, float]]:
    """The `name=value;` metric lines that training prints, one dict per line."""
    parsed = []
    for line in lines:
        found = METRIC_LINE.findall(line)
        if found:
            parsed.append({name: float(value) for name, value in found})
    return parsed


# --- subprocesses --------------------------------------------------------------------------


@dataclass
class ProcessRun:
    returncode: int
    wall_seconds: float
    peak_rss_mb: float  # of this child and the descendants it waited for
    lines: list[str]


def run_tracked(
    command: list[str], env: dict[str, str] | None = None, log_path: Path | None = None
) -> ProcessRun:
    """Run a command to completion, echoing its output with a prefix; measure wall time and
    peak RSS. os.wait4 gives this child's own rusage, unlike RUSAGE_CHILDREN, which is the
    maximum over every child this process has ever waited for."""
    print(f"$ {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    reader = threading.Thread(target=_echo, args=(process, lines), daemon=True)
    reader.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        stop_processes(process_tree(process), timeout=0)  # interrupted: no grace
        raise
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=10)
    if log_path:
        log_path.write_text("".join(lines))
    return ProcessRun(process.returncode, wall, usage.ru_maxrss / 1024, lines)


def _echo(process: subprocess.Popen, lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        print(f"  | {line}", end="", flush=True)


def check_run(run: ProcessRun, what: str) -> None:
    if run.returncode != 0:
        tail = "".join(run.lines[-20:])
        sys.exit(f"{what} failed with exit code {run.returncode}:\n{tail}")


@dataclass
class TrainingRun:
    process: ProcessRun
    report: dict[str, Any]  # output/data/evaluation.json
    epochs: list[dict[str, float]]  # the per-epoch metric lines
    model_dir: Path


def train_with_postwerk(
    base: Path, hyperparameters: dict[str, Any], channels: dict[str, list[Row]], log_path: Path
) -> TrainingRun:
    """`python -m model train` on a fresh job folder at `base`; exits if it fails."""
    layout_job(base, hyperparameters, channels)
    run = run_tracked(
        [PYTHON, "-m", "model", "train"], env={"SAGEMAKER_BASE_DIR": str(base)}, log_path=log_path
    )
    check_run(run, "python -m model train")
    report = json.loads((base / "output" / "data" / "evaluation.json").read_text())
    epochs = [m for m in parse_metric_lines(run.lines) if "epoch" in m]
    return TrainingRun(run, report, epochs, base / "model")


# --- in-process inference ------------------------------------------------------------------


@dataclass
class InferencePass:
    labels: list[str]
    seconds: float

    def texts_per_second(self) -> float:
        return len(self.labels) / self.seconds


def predictor_pass(predictor: Any, texts: Sequence[str], batch_size: int) -> InferencePass:
    """Predictor.predict on consecutive batches of `batch_size` texts, as a busy endpoint
    sees them (no sorting across batches); one warm-up batch is not timed."""
    predictor.predict(list(texts[:batch_size]), 1)
    labels: list[str] = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        labels += [p.label for p in predictor.predict(list(texts[start : start + batch_size]), 1)]
    return InferencePass(labels, time.perf_counter() - started)


def accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


# --- results -------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "cpu_vendor": cpu_vendor(),
        "cpu_features": _cpu_features(),
        # over 1, 5 and 15 minutes: above cpu_count, other work shared the cores
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str | None:
    return _cpuinfo_field("model name") or platform.processor() or None


# The instruction sets an inference engine's speed depends on (OpenVINO picks its kernels by
# them): AVX-512, VNNI for int8, BF16, and AMX on Intel since Sapphire Rapids.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
                "amx_int8")  # fmt: skip
VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}


def _cpuinfo_field(name: str) -> str:
    """The first processor's field in /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_vendor() -> str:
    """intel, amd, or what /proc/cpuinfo says (other where it says nothing)."""
    vendor = _cpuinfo_field("vendor_id")
    return VENDORS.get(vendor, vendor.lower() or "other")


def _cpu_features() -> list[str]:
    flags = set(_cpuinfo_field("flags").split())
    return [feature for feature in CPU_FEATURES if feature in flags]


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def write_results(
    name: str,
    results: dict[str, Any],
    quick: bool,
    module: str | None = None,
    per_cpu: bool = False,
) -> Path:
    """bench/results/<name>.json (bench/work/results/ for --quick), with machine info;
    <name>-cuda.json on a GPU machine, so that CPU and GPU figures live side by side, and
    <name>-intel.json, <name>-amd.json with `per_cpu`, for figures that depend on the CPU.
    `module`: the benchmark's module, where it is not bench.<name>."""
    import torch

    folder = QUICK_RESULTS_DIR if quick else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    variant = "-cuda" if torch.cuda.is_available() else f"-{cpu_vendor()}" if per_cpu else ""
    path = folder / f"{name}{variant}.json"
    document = {
        "benchmark": name,
        "command": reproduce_command(module or name),
        "quick": quick,
        "machine": machine_info(),
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table; floats get 4 significant digits."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def finish(
    name: str,
    results: dict[str, Any],
    quick: bool,
    module: str | None = None,
    per_cpu: bool = False,
) -> None:
    path = write_results(name, results, quick, module, per_cpu)
    print(f"\nresults: {path.relative_to(REPO_ROOT)}")
    print(f"reproduce: {reproduce_command(module or name)}")
    if quick:
        print("(--quick: a smoke run on tiny data; the numbers mean little)")


# --- the local SageMaker service -----------------------------------------------------------

BENCH_BUCKET = "postwerk-bench"
BENCH_ROLE = "arn:aws:iam::000000000000:role/postwerk-bench"


def create_model(sm, s3, model_dir: Path, name: str = "bench") -> None:
    """The model folder as model.tar.gz in the bench bucket, and a SageMaker model of it."""
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    s3.put_object(Bucket=BENCH_BUCKET, Key="model.tar.gz", Body=archive.getvalue())
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=BENCH_ROLE,
        PrimaryContainer={
            "Image": "postwerk-model",
            "ModelDataUrl": f"s3://{BENCH_BUCKET}/model.tar.gz",
        },
    )
