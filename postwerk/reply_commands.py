"""`postwerk outbox`: the replies staff sent from the review page, as
services/replies/sending.py keeps them in the artifacts bucket (the record and the raw MIME
that went to SES), whatever the local SES stores. `postwerk reindex-replies`: the suggestion
index built anew with the serving model's embeddings, as after a promotion. And the example
templates `postwerk up` seeds (services/replies/examples.py)."""

from typing import Annotated

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from postwerk import sagemaker
from postwerk.output import console
from postwerk.settings import CliSettings, EndpointOption
from services import storage


def outbox(
    raw: Annotated[bool, typer.Option("--raw", help="print each reply's MIME as sent")] = False,
) -> None:
    """The sent replies, oldest first: when, who, which suggestion, how much was edited."""
    from services.replies import sending  # on use: its index needs numpy, no other command does

    bucket = sagemaker.artifact_bucket(CliSettings().bucket)
    sent = sending.outbox(bucket)
    table = Table(title=f"sent replies in s3://{bucket}/{sending.SENT}")
    for column in ("sent at", "by", "e-mail", "suggestion", "edited", "status"):
        table.add_column(column)
    for record, _ in sent:
        table.add_row(record.sent_at.isoformat(timespec="seconds"), record.sender,
                      record.message_id, record.suggestion or "-", f"{record.edited:.0%}",
                      record.status)  # fmt: skip
    console.print(table)
    if raw:
        for record, key in sent:
            if record.status == "sent":
                mime = storage.read(bucket, key)
                console.print(mime.decode(errors="replace"), markup=False, highlight=False)


def reindex_replies(endpoint: EndpointOption = None) -> None:
    """Build every category's suggestion index anew from the sent e-mail/reply pairs, with
    the endpoint's embeddings (`promote`, `rollback` and `deploy-model` do it too, and the
    monitor's next run after its own promotion; until then the review page suggests no
    replies to similar e-mails)."""
    settings = CliSettings()
    rebuild_index(sagemaker.artifact_bucket(settings.bucket), endpoint or settings.endpoint_name)


def rebuild_index_for_new_model(bucket: str, endpoint: str) -> None:
    """After another model began to serve: its embeddings replace the last one's in the
    suggestion index. A failure here leaves the switch done and says what to run."""
    try:
        rebuild_index(bucket, endpoint)
    except (ClientError, BotoCoreError, ValueError) as error:
        console.print(f"[yellow]the reply index was not rebuilt[/] ({error}): run "
                      "`postwerk reindex-replies`")  # fmt: skip


def rebuild_index(bucket: str, endpoint: str) -> None:
    from services.replies import reindex, sending

    with console.status(f"embedding the sent replies' e-mails with {endpoint} ..."):
        counts, left_out = reindex.reindex(bucket, endpoint)
    for category, count in sorted(counts.items()):
        console.print(f"reply index {category}: {count} sent replies")
    if not counts:
        console.print(f"no staff replies in s3://{bucket}/{sending.PAIRS}: no reply index to build")
    if left_out:
        console.print(f"left out {left_out} automatic or older replies")


def seed_example_templates(bucket: str) -> None:
    """The example reply templates, the first time the stack comes up (`postwerk up`)."""
    from services.replies import examples

    if seeded := examples.seed(bucket):
        console.print(f"{len(seeded)} example reply templates (titled Example/Beispiel): "
                      "retire them on the review page (t) once you have your own")  # fmt: skip


COMMANDS = {"outbox": outbox, "reindex-replies": reindex_replies}
