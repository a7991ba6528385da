"""`postwerk mailbox add/list/status/remove`: the mailboxes the mailbox door reads, kept
in the artifacts bucket (its AWS calls are services/mailbox/state.py), so the same command
configures the local door and the scheduled function on AWS. A secret is given by
reference only (`env:NAME`, `secretsmanager:NAME`), never on the command line.
`postwerk status` shows the door's health through `show_health`.
"""

from datetime import datetime
from typing import Annotated, get_args

import typer
from pydantic import ValidationError
from rich.table import Table

from postwerk import sagemaker
from postwerk.errors import RAN_AND_FAILED, CommandError
from postwerk.output import console, handled
from postwerk.settings import CliSettings
from services.mailbox import state
from services.mailbox.config import GRAPH_URL, Action, Auth, Mailbox, Security


def choices(literal) -> str:
    return ", ".join(get_args(literal))


def add(
    name: Annotated[str, typer.Argument(help="a short name: lower-case letters, digits, -")],
    user: Annotated[str, typer.Option(help="the mailbox's login, e.g. support@example.com")],
    secret: Annotated[
        str,
        typer.Option(help="where the secret lives: env:NAME or secretsmanager:NAME (never it)"),
    ],
    host: Annotated[str, typer.Option(help="the IMAP server, e.g. outlook.office365.com")] = "",
    graph: Annotated[
        bool,
        typer.Option(
            "--graph",
            help="Microsoft 365 through Microsoft Graph, where IMAP is off: needs --tenant, "
            "--client-id and the app's secret (login microsoft); folders are well-known "
            "names (inbox, archive) or ids",
        ),
    ] = False,
    graph_url: Annotated[str, typer.Option(help="--graph: the API's base URL")] = GRAPH_URL,
    auth: Annotated[str, typer.Option(help=f"{choices(Auth)} (--graph: microsoft)")] = "",
    security: Annotated[str, typer.Option(help=choices(Security))] = "imaps",
    port: Annotated[int, typer.Option(help="0: 993 for imaps, 143 otherwise")] = 0,
    folder: Annotated[
        list[str], typer.Option(help="repeat for several; IDLE watches the first")
    ] = ["INBOX"],  # noqa: B006 (Typer reads the default)
    action: Annotated[str, typer.Option(help=f"once stored: {choices(Action)}")] = "keep",
    flag: Annotated[str, typer.Option(help="keep: the flag to set")] = r"\Seen",
    move_to: Annotated[str, typer.Option(help="move: the folder")] = "",
    tenant: Annotated[str, typer.Option(help="microsoft: the Entra ID tenant")] = "",
    client_id: Annotated[str, typer.Option(help="microsoft: the app's client id")] = "",
    poll_seconds: Annotated[int, typer.Option(help="polling without IDLE")] = 60,
    alarm_after: Annotated[int, typer.Option(help="minutes without a good fetch: alarm")] = 15,
) -> None:
    """Add a mailbox for the door to read, or replace its configuration (the checkpoint
    stays: nothing is fetched twice)."""
    try:
        mailbox = Mailbox(
            name=name,
            kind="graph" if graph else "imap",
            graph_url=graph_url,
            host=host,
            port=port,
            security=security,
            user=user,
            auth=auth or ("microsoft" if graph else "password"),
            secret=secret,
            tenant=tenant,
            client_id=client_id,
            folders=folder,
            action=action,
            flag=flag,
            move_to=move_to,
            poll_seconds=poll_seconds,
            alarm_after_minutes=alarm_after,
        )
    except ValidationError as error:
        raise CommandError(f"mailbox {name}: {first_problem(error)}") from None
    bucket = sagemaker.artifact_bucket(CliSettings().bucket)
    sagemaker.ensure_bucket(bucket)
    state.save_mailbox(bucket, mailbox)
    door = " through Microsoft Graph" if graph else ""
    folders = ", ".join(mailbox.folders)
    console.print(f"mailbox [bold]{name}[/] saved: the door reads {folders}{door}")


def first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    if where == "secret":
        return "--secret takes a reference (env:NAME or secretsmanager:NAME), never the secret"
    return f"{where}: {problem['msg']}" if where else problem["msg"].removeprefix("Value error, ")


def list_mailboxes() -> None:
    """The configured mailboxes."""
    found = state.mailboxes(sagemaker.artifact_bucket(CliSettings().bucket))
    if not found:
        console.print("no mailboxes (postwerk mailbox add)")
        return
    table = Table(title="mailboxes")
    for column in ("name", "server", "user", "login", "folders", "then"):
        table.add_column(column)
    for mailbox in found:
        flag = "mark read" if mailbox.kind == "graph" else f"flag {mailbox.flag}"
        then = {"keep": flag, "move": f"move to {mailbox.move_to}"}
        server = f"{mailbox.host}:{mailbox.server_port} ({mailbox.security})"
        if mailbox.kind == "graph":
            server = "Microsoft Graph" + (
                "" if mailbox.graph_url == GRAPH_URL else f" ({mailbox.graph_url})"
            )
        table.add_row(
            mailbox.name,
            server,
            mailbox.user,
            f"{mailbox.auth} ({mailbox.secret})",
            ", ".join(mailbox.folders),
            then.get(mailbox.action, "delete"),
        )
    console.print(table)


def status() -> None:
    """Each mailbox's last fetch: when, how many, the backlog, what failed. Exit 1 when a
    fetch is failing or overdue."""
    bucket = sagemaker.artifact_bucket(CliSettings().bucket)
    if not show_health(bucket):
        console.print("no mailboxes (postwerk mailbox add)")


def show_health(bucket: str) -> bool:
    """The door's health table; False when no mailbox is configured. Raises (exit 1) after
    showing it when a fetch is failing or overdue."""
    found = state.mailboxes(bucket)
    if not found:
        return False
    now = state.now()
    table = Table(title="mailbox door")
    for column in ("mailbox", "last success", "stored", "set aside", "backlog", "state"):
        table.add_column(column, justify="right" if column in ("stored", "backlog") else "left")
    troubled = []
    for mailbox in found:
        health = state.health(bucket, mailbox.name)
        verdict = judge(mailbox, health, now)
        if verdict.startswith(("failing", "overdue")):
            troubled.append(f"{mailbox.name}: {verdict}")
        table.add_row(
            mailbox.name,
            when(health.last_success_at),
            str(health.stored),
            str(health.set_aside),
            str(health.backlog),
            f"[red]{verdict}[/]" if verdict.startswith(("failing", "overdue")) else verdict,
        )
    console.print(table)
    if troubled:
        raise CommandError("mailbox door: " + "; ".join(troubled), RAN_AND_FAILED)
    return True


def judge(mailbox: Mailbox, health: state.Health, now: datetime) -> str:
    if health.last_attempt_at is None:
        return "not fetched yet"
    if health.last_error:
        return f"failing since {when(health.last_error_at)}: {health.last_error}"
    if health.overdue(mailbox, now):
        return f"overdue: no fetch for over {mailbox.alarm_after_minutes} minutes"
    return "ok"


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "never"


def remove(name: Annotated[str, typer.Argument(help="the mailbox's name")]) -> None:
    """Stop reading a mailbox: its configuration, checkpoint and health go (the messages
    stored stay where they are)."""
    if not state.remove_mailbox(sagemaker.artifact_bucket(CliSettings().bucket), name):
        raise CommandError(f"no mailbox {name} (postwerk mailbox list)")
    console.print(f"mailbox [bold]{name}[/] removed")


mailbox_app = typer.Typer(help="The mailboxes the mailbox door reads.", no_args_is_help=True)
mailbox_app.command("add")(handled(add))
mailbox_app.command("list")(handled(list_mailboxes))
mailbox_app.command("status")(handled(status))
mailbox_app.command("remove")(handled(remove))
