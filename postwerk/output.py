"""How every `postwerk` command talks to its user: one console, and failures as one red
line with an exit code scripts can trust instead of a traceback (`handled`, applied to
every command where the CLI registers it).

Exit codes: 0 done; 1 the job or call ran and failed (its reason is printed); 2 the command
could not start (bad input, AWS unreachable or refusing, the local AWS not running).
"""

import functools
import io
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from postwerk import sagemaker
from postwerk.errors import COULD_NOT_START, RAN_AND_FAILED, CommandError
from services.registry import LifecycleError
from services.waits import TimedOut


class StdoutThatMayVanish(io.TextIOBase):
    """sys.stdout, except that once its reader is gone (a pipe closed by `tee` dying with
    the same Ctrl-C, a closed terminal) every write goes nowhere instead of raising: a
    message must never stop a shutdown half-way."""

    @staticmethod
    def stream() -> io.TextIOBase:
        """sys.stdout, or the file behind it while Rich's Live redirects sys.stdout into
        this console (writing to the redirect would feed the console its own output)."""
        return getattr(sys.stdout, "rich_proxied_file", sys.stdout)

    def write(self, text: str) -> int:
        try:
            self.stream().write(text)
        except OSError:
            silence_output()
        return len(text)

    def flush(self) -> None:
        try:
            self.stream().flush()
        except OSError:
            silence_output()

    def isatty(self) -> bool:
        return self.stream().isatty()

    def fileno(self) -> int:
        return self.stream().fileno()

    @property
    def encoding(self) -> str:
        return self.stream().encoding


def silence_output() -> None:
    """Point this process's stdout and stderr at /dev/null (the interpreter's last flush
    included), so nothing else fails on the vanished reader."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


console = Console(file=StdoutThatMayVanish(), highlight=False)


def shell_command() -> str:
    """This `postwerk` as the user's shell can call it: the bare name where PATH finds this
    one, else its path (relative when below the working directory, e.g. .venv/bin/postwerk)."""
    installed = Path(sys.executable).parent / "postwerk"
    found = shutil.which("postwerk")
    if found and Path(found).resolve() == installed.resolve():
        return "postwerk"
    try:
        return str(installed.relative_to(Path.cwd()))
    except ValueError:
        return str(installed)


def handled(command: Callable) -> Callable:
    """The command, with every user-facing failure rendered as one red line and its exit
    code. What is not listed here is a bug and keeps its traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CommandError as error:
            failure(str(error), error.code)
        except LifecycleError as error:
            failure(str(error), COULD_NOT_START)
        except TimedOut as error:
            failure(str(error), RAN_AND_FAILED)
        except ClientError as error:
            details = error.response.get("Error", {})
            failure(f"AWS refused: {details.get('Code')}: {details.get('Message')}", 2)
        except BotoCoreError as error:
            local_hint = f'for the local stack: eval "$({shell_command()} env)"'
            failure(f"cannot reach AWS: {error}\n({local_hint})", COULD_NOT_START)

    return run


def failure(message: str, code: int) -> NoReturn:
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
