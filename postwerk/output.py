"""How every `postwerk` command talks to its user: one console, and failures as one red
line with an exit code scripts can trust instead of a traceback.

Exit codes: 0 done; 1 the job or call ran and failed (its reason is printed); 2 the command
could not start (bad input, AWS unreachable or refusing, the local AWS not running).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from postwerk import sagemaker
from postwerk.local import LocalError

console = Console(highlight=False)


@contextmanager
def clear_failures() -> Iterator[None]:
    """AWS and input errors as one red line and exit code 2, not a traceback."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        fail(f"AWS refused: {details.get('Code')}: {details.get('Message')}", 2)
    except BotoCoreError as error:
        fail(f'cannot reach AWS: {error}\n(for the local stack: eval "$(postwerk env)")', 2)
    except (ValueError, LocalError) as error:
        fail(str(error), 2)


def fail(message: str, code: int) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


def follow_training_job(job: str) -> str:
    """Secondary status changes and the job's log as they come; returns the final status."""
    shown = ""
    status = "InProgress"
    for progress in sagemaker.follow_training_job(job):
        for line in progress.new_log_lines:
            console.out(f"  | {line}", highlight=False)
        if progress.secondary != shown:
            shown = progress.secondary
            console.print(f"[cyan]{progress.secondary}[/] {progress.message}")
        status = progress.status
    return status
