"""`postwerk send`, `results` and `monitor`: feed the pipeline, read it, watch it (the
calls are in postwerk/pipeline.py)."""

import csv
import json
import os
import sys
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from postwerk import deploy as stack
from postwerk import local, pipeline
from postwerk import plots as plotting
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console
from postwerk.settings import CliSettings
from services import clients, storage, waits
from services.settings import MONITOR_OVERRIDES

Paths = Annotated[list[Path], typer.Argument(help=".eml files, or folders of them")]


def send(
    paths: Paths,
    wait: Annotated[bool, typer.Option(help="wait for their results and show them")] = False,
    smtp: Annotated[
        bool, typer.Option(help="by SMTP to the local stack's mail server, as mail arrives")
    ] = False,
) -> None:
    """Upload e-mails into the pipeline (the raw bucket's incoming/ prefix), or mail them."""
    settings = CliSettings()
    outputs = stack.stack_outputs(settings.stack_name)
    files = pipeline.email_files(paths)
    if smtp:
        sent = mail_through_smtp(files, settings)
    else:
        sent = pipeline.send(files, outputs["RawBucket"])
        console.print(f"sent {len(sent)} e-mail(s) to s3://{outputs['RawBucket']}/incoming/")
    if wait:
        show_sent_results(sent, outputs)


def mail_through_smtp(files: list[Path], settings: CliSettings) -> list[pipeline.Sent]:
    """Each file to the local SMTP server (emulation/smtp.py), addressed to the first of its
    recipients; it lands in incoming/ as SES would put it there."""
    from emulation import smtp  # the SMTP library loads only for --smtp

    running = local.find(settings.state_dir)
    found = (running.env if running else {}) | os.environ
    if "POSTWERK_SMTP_PORT" not in found:
        raise CommandError("--smtp: no local mail server runs (`postwerk up` starts one)")
    port = int(found["POSTWERK_SMTP_PORT"])
    first = found.get("POSTWERK_SMTP_RECIPIENTS", ",".join(smtp.DEFAULT_RECIPIENTS)).split(",")[0]
    recipient = first if "@" in first else f"support@{first}"
    sent = []
    for path in files:
        raw = path.read_bytes()
        try:
            key = smtp.deliver(raw, port, pipeline.headers(raw)["from"], recipient)
        except (smtp.Refused, OSError) as error:
            message = f"{path}: the mail server did not take it: {error}"
            raise CommandError(message, RAN_AND_FAILED) from error
        sent.append(pipeline.Sent(path, key, pipeline.message_id(raw)))
    console.print(f"mailed {len(sent)} e-mail(s) to {recipient} by SMTP on port {port}")
    return sent


def show_sent_results(sent: list[pipeline.Sent], outputs: dict[str, str], timeout=300) -> None:
    """Wait (with a progress bar) until every sent e-mail has a result or was rejected with
    a reason; show them."""
    found: dict[str, dict] = {}
    rejected: dict[str, str] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("classifying", total=len(sent))
        with suppress(waits.TimedOut):  # the table shows what came, the error what did not
            for _ in waits.polls("the sent e-mails' results", timeout, 0.5):
                found, rejected = outcomes(sent, outputs, rejected)
                progress.update(task, completed=len(found) + len(rejected))
                if len(found) + len(rejected) == len(sent):
                    break
    console.print(sent_table(sent, found, rejected))
    missing = len(sent) - len(found) - len(rejected)
    if missing:
        message = f"{missing} e-mail(s) without a result after {timeout} s; see `postwerk status`"
        raise CommandError(message, RAN_AND_FAILED)


def outcomes(
    sent: list[pipeline.Sent], outputs: dict[str, str], rejected: dict[str, str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """The sent e-mails' results so far, and the rejected ones' reasons (`rejected`: those
    found before)."""
    wanted = {item.message_id for item in sent}
    results = pipeline.results(outputs["ResultsTable"])
    found = {item["message_id"]: item for item in results if item["message_id"] in wanted}
    waiting = {i.key for i in sent if i.message_id not in found and i.key not in rejected}
    return found, rejected | pipeline.rejections(outputs["RawBucket"], waiting)


def sent_table(sent: list[pipeline.Sent], found: dict[str, dict], rejected: dict[str, str]):
    rows = []
    for item in sent:
        headers = pipeline.headers(item.path.read_bytes())
        result = found.get(item.message_id)
        if result:
            rows.append(result_row(headers, result))
        elif item.key in rejected:
            rows.append(outcome_row(headers, f"[red]rejected[/]: {rejected[item.key]}"))
        else:
            rows.append(outcome_row(headers, "[yellow]pending[/]"))
    return emails_table("results", rows)


def emails_table(title: str, rows: list[list[str]]) -> Table:
    """E-mails as `up` and `results` show them: who (redacted), what, and the outcome."""
    table = Table(title=title)
    for column in ("sender", "subject", "category", "score", "review", "classified at"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def result_row(headers: dict[str, str], result: dict) -> list[str]:
    return [
        pipeline.redact(headers["from"]),
        headers["subject"][:48],
        result["label"],
        f"{result['score']:.2f}",
        "[red]yes[/]" if result["needs_review"] else "",
        result["classified_at"][:19].replace("T", " "),
    ]


def outcome_row(headers: dict[str, str], outcome: str) -> list[str]:
    return [pipeline.redact(headers["from"]), headers["subject"][:48], outcome, "", "", ""]


FORMATS = ("table", "jsonl", "csv")
TABLE_ROWS = 20


def results(
    output_format: Annotated[str, typer.Option("--format", help="table, jsonl or csv")] = "table",
    output: Annotated[Path | None, typer.Option(help="write to this file instead")] = None,
    needs_review: Annotated[bool, typer.Option(help="only results that need review")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="the newest N (default: 20 shown, all exported)")
    ] = None,
) -> None:
    """Show or export the classification results (classification.v1), newest first."""
    if output_format not in FORMATS:
        raise CommandError(f"--format {output_format}: choose one of {', '.join(FORMATS)}")
    settings = CliSettings()
    outputs = stack.stack_outputs(settings.stack_name)
    items = pipeline.results(outputs["ResultsTable"])[::-1]
    if needs_review:
        items = [item for item in items if item["needs_review"]]
    if output_format == "table":
        shown = items[: limit or TABLE_ROWS]
        console.print(stored_results_table(shown, total=len(items)))
        return
    items = items[:limit] if limit else items
    with open(output, "w", newline="") if output else nullcontext(sys.stdout) as stream:
        if output_format == "jsonl":
            for item in items:
                stream.write(json.dumps(item) + "\n")
        else:
            write_csv(items, stream)
    if output:
        console.print(f"wrote {len(items)} result(s) to {output}")


def write_csv(items: list[dict], stream) -> None:
    columns = ["message_id", "label", "score", "needs_review", "model_version", "classified_at"]
    writer = csv.writer(stream)
    writer.writerow(columns)
    for item in items:
        writer.writerow(
            [
                item["message_id"],
                item["label"],
                item["score"],
                item["needs_review"],
                item["model"]["version"],
                item["classified_at"],
            ]
        )


def stored_results_table(items: list[dict], total: int) -> Table:
    """The results with sender and subject read from their raw e-mails (the results hold
    no addresses)."""
    review = sum(item["needs_review"] for item in items)
    shown = f"the newest {len(items)} of {total}" if len(items) < total else f"{total}"
    rows = [result_row(raw_headers(item), item) for item in items]
    return emails_table(f"{shown} result(s), {review} of them need review", rows)


def raw_headers(result: dict) -> dict[str, str]:
    source = (result.get("input") or {}).get("source")
    if source is None:  # a result from before inputs were recorded
        return {"from": "", "subject": ""}
    raw = storage.get(source["bucket"], source["key"])
    if raw is None:
        return {"from": "", "subject": result["input"]["subject"]}
    return pipeline.headers(raw.body)


def monitor(
    window_hours: Annotated[float | None, typer.Option(min=0.01, help="the window")] = None,
    min_accuracy: Annotated[float | None, typer.Option(help="rule override")] = None,
    min_reviewed: Annotated[int | None, typer.Option(help="rule override")] = None,
    max_label_psi: Annotated[float | None, typer.Option(help="rule override")] = None,
    max_ece_increase: Annotated[float | None, typer.Option(help="rule override")] = None,
    promotion_margin: Annotated[float | None, typer.Option(help="override")] = None,
    plots: Annotated[Path | None, typer.Option(help="folder for the PNG plots")] = None,
) -> None:
    """Run the monitor now (the scheduled function): live quality, drift, and the
    retraining or promotion it decides. Draws its plots as PNG. The defaults of the
    overrides are the function's (services/settings.py)."""
    settings = CliSettings()
    given = locals()
    event = {name: given[name] for name in MONITOR_OVERRIDES if given[name] is not None}
    outputs = stack.stack_outputs(settings.stack_name)
    lambda_ = clients.client("lambda", read_timeout=330)
    answer = lambda_.invoke(FunctionName=outputs["MonitorFunction"], Payload=json.dumps(event))
    document = json.loads(answer["Payload"].read() or b"{}")
    if "FunctionError" in answer:
        message = f"the monitor failed: {document.get('errorMessage', document)}"
        raise CommandError(message, RAN_AND_FAILED)
    if document["status"] != "ok":
        console.print(document["message"])
        return
    report = document["report"]
    show_report(report, document["window_hours"])
    for action in document["actions"]:
        console.print(f"[bold]action:[/] {action}")
    saved = plotting.draw(report, plots or settings.state_dir / "monitoring")
    console.print(f"plots: {', '.join(str(path) for path in saved)}")
    console.print(f"[bold]verdict:[/] {verdict(report['fired'], document['actions'])}")


def verdict(fired: list[str], actions: list[str]) -> str:
    """The monitor run in one line: which rules fired and what came of it."""
    done = "; ".join(actions)
    if not fired:
        return done or "no rule fired; nothing to do"
    rules = f"{len(fired)} rule(s) fired ({'; '.join(fired)})"
    return f"{rules}: {done}" if done else f"{rules}; nothing started"


def show_report(report: dict, window_hours: float) -> None:
    def shown(value, digits=3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    table = Table(title=f"monitor: the last {window_hours:g} h")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("results", str(report["results"])),
        ("reviewed", str(report["reviewed"])),
        ("needs-review rate", shown(report["needs_review_rate"])),
        ("live accuracy (reviewed)", shown(report["live_accuracy"])),
        ("live macro-F1 (reviewed)", shown(report["live_macro_f1"])),
        ("calibration error (reviewed)", shown(report["live_ece"])),
        ("calibration error at training", shown(report["training_ece"])),
        ("predicted labels vs training (PSI)", shown(report["label_psi"])),
        ("length drift (PSI)", shown(report["length_psi"])),
        ("language drift (PSI)", shown(report["language_psi"])),
        ("languages", ", ".join(f"{k} {v}" for k, v in report["languages"].items())),
    ):
        table.add_row(name, value)
    console.print(table)
    peak = max(report["confidence_histogram"]) or 1
    console.print("confidence:")
    for number, count in enumerate(report["confidence_histogram"]):
        bar = "█" * round(30 * count / peak)
        console.print(f"  {number / 10:.1f}-{(number + 1) / 10:.1f} {bar} {count}")
    for rule in report["fired"]:
        console.print(f"[red]rule fired:[/] {rule}")


COMMANDS = {"send": send, "results": results, "monitor": monitor}
