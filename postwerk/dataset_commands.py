"""`postwerk dataset build`: a mailbox's history as a labelled data set in the artifacts
bucket (the work is in postwerk/dataset.py); `postwerk backfill`: the same sources
classified into the results (postwerk/backfill.py)."""

from __future__ import annotations  # the data card's type, without importing dataset.py

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from postwerk import deploy as stack
from postwerk import sagemaker
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console, handled
from postwerk.settings import CliSettings, EndpointOption

if TYPE_CHECKING:
    from postwerk import dataset

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
Sources = Annotated[
    list[Path],
    typer.Argument(exists=True, help=".eml folders, mbox files, Maildirs, .msg, .pst"),
]


def build(
    sources: Sources,
    name: Annotated[str, typer.Option(help="the data set's name (letters, digits, . _ -)")],
    mapping: Annotated[
        Path | None,
        typer.Option(exists=True, help='JSON {"folder": "label" or null to ignore it}'),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(exists=True, help="CSV message_id,label (instead of the folders)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="of the train/validation/test split")] = 0,
    min_count: Annotated[int, typer.Option(min=1, help="fewer messages: a rare label")] = 10,
) -> None:
    """Build a labelled data set from mail folders and upload it (datasets/NAME/VERSION/)."""
    from postwerk import dataset  # on use: every other command starts faster without it

    if not NAME.match(name):
        raise CommandError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    if mapping and labels:
        raise CommandError("--mapping renames folders, --labels replaces them: give one")
    bucket = sagemaker.artifact_bucket(CliSettings().bucket)
    sagemaker.ensure_bucket(bucket)  # before reading a large mailbox: AWS answers
    try:
        chosen = dataset.Labels(
            mapping=dataset.read_mapping(mapping) if mapping else None,
            by_id=dataset.read_label_csv(labels) if labels else None,
        )
        card = dataset.build(sources, name, chosen, bucket, seed, min_count)
    except dataset.DatasetError as error:
        raise CommandError(str(error)) from error
    show_card(card, bucket)


def show_card(card: dataset.DataCard, bucket: str) -> None:
    from postwerk import dataset

    table = Table(title=f"data set {card.name}:{card.version}")
    table.add_column("label")
    for split in dataset.SPLITS:
        table.add_column(split, justify="right")
    for label in sorted({label for counts in card.counts.values() for label in counts}):
        rare = " (rare)" if label in card.rare_labels else ""
        table.add_row(label + rare, *(str(card.counts[s].get(label, 0)) for s in dataset.SPLITS))
    console.print(table)
    if 1 < card.folds < dataset.FOLDS:
        totals = Counter()
        for counts in card.counts.values():
            totals.update(counts)
        smallest = min(totals.values())
        console.print(
            f"few messages: the smallest label has {smallest}, so the split is "
            f"{card.folds} folds, not {dataset.FOLDS}: test and validation hold about one "
            "message of each label, and their figures are a smoke test, not a measurement"
        )
    dropped = ", ".join(f"{count} {reason}" for reason, count in card.dropped.items())
    console.print(f"dropped: {dropped}")
    console.print(f"languages: {card.languages}; {card.first_date} .. {card.last_date}")
    console.print(f"s3://{bucket}/{dataset.PREFIX}/{card.name}/{card.version}/")
    console.print(f"train on it: postwerk train --dataset {card.name}")


def backfill_archive(
    sources: Sources,
    endpoint: EndpointOption = None,
    review_threshold: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="results scoring below need review (a model without per-label thresholds)",
        ),
    ] = 0.75,
) -> None:
    """Classify an archive with a batch transform job of the served model; the results go
    where the pipeline's go, marked as a backfill."""
    from postwerk import backfill, dataset  # on use, as in build()

    settings = CliSettings()
    outputs = stack.stack_outputs(settings.stack_name)
    bucket = sagemaker.artifact_bucket(settings.bucket)
    sagemaker.ensure_bucket(bucket)
    where = backfill.Stack(outputs["RawBucket"], outputs["ResultsBucket"], outputs["ResultsTable"])
    try:
        outcome = backfill.backfill(
            sources,
            where,
            bucket,
            endpoint or settings.endpoint_name,
            settings.serving_instance_type,
            review_threshold,
        )
    except (backfill.BackfillError, dataset.DatasetError) as error:
        raise CommandError(str(error)) from error
    console.print(
        f"{outcome.job}: {outcome.parsed} e-mail(s) parsed, {outcome.classified} classified, "
        f"{outcome.kept_earlier} had a result already, {outcome.not_emails} not e-mails"
    )
    if outcome.failure:
        raise CommandError(f"transform job {outcome.job}: {outcome.failure}", RAN_AND_FAILED)


# `postwerk dataset ...`: registered in postwerk/cli.py beside the plain commands.
dataset_app = typer.Typer(help="Labelled data sets from mail folders.", no_args_is_help=True)
dataset_app.command("build")(handled(build))

COMMANDS = {"backfill": backfill_archive}
