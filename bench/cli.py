"""How fast the `postwerk` command answers: `--help`, `env` and `status` against a running
local stack, each against the interpreter's bare start-up measured in the same run.

Brings up its own stack (state folder under bench/work/, free ports, a one-step model),
times each command `--runs` times, prints median and worst against the targets (`--help`
< 0.5 s, `env` < 0.5 s, `status` < 1.5 s on 2 cores), then stops the stack.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import base_parser, finish, print_table, work_dir
from emulation.processes import free_ports

POSTWERK = str(Path(sys.executable).parent / "postwerk")
TARGETS = {"--help": 0.5, "env": 0.5, "status": 1.5}


def timed(command: list[str], environment: dict[str, str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=environment, capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    aws_port, sagemaker_port, smtp_port = free_ports(3)
    environment = os.environ | {
        "BACKEND": "embedded",
        "POSTWERK_STATE_DIR": str(work_dir("cli", clean=True)),
        "POSTWERK_AWS_PORT": str(aws_port),
        "POSTWERK_SAGEMAKER_PORT": str(sagemaker_port),
        "POSTWERK_SMTP_PORT": str(smtp_port),
    }
    up = [POSTWERK, "up", "--detach", "--no-send-samples", "-p", "max_steps=1"]
    print("bringing up a stack for the benchmark (one training step) ...", flush=True)
    subprocess.run(up, env=environment, capture_output=True, check=True)
    try:
        baseline = statistics.median(timed([sys.executable, "-c", "pass"], environment, runs))
        rows, results = [], {"python_startup_s": baseline, "commands": {}}
        for name, target in TARGETS.items():
            seconds = timed([POSTWERK, name], environment, runs)
            median, worst = statistics.median(seconds), max(seconds)
            verdict = "met" if median < target else "NOT MET"
            rows.append([f"postwerk {name}", median, worst, median / baseline, target, verdict])
            results["commands"][name] = {
                "median_s": median, "max_s": worst, "target_s": target, "met": median < target
            }  # fmt: skip
    finally:
        subprocess.run([POSTWERK, "down"], env=environment, capture_output=True, check=False)
    print_table(
        f"postwerk start-up ({runs} runs each; bare `python -c pass`: {baseline:.3f} s)",
        ["command", "median s", "max s", "x python start-up", "target s", ""],
        rows,
    )
    finish("cli", results, args.quick)


if __name__ == "__main__":
    main()
