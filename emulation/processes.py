"""What every local stand-in for AWS shares, for emulation/ and the `postwerk` command alike:
the loopback host, free ports, the dummy credentials, files written atomically, and
starting a process that is ready once it answers."""

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

HOST = "127.0.0.1"
DUMMY_CREDENTIALS = {
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


class StartError(Exception):
    """The process exited or did not become ready in time; the message holds its log's end."""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie we have yet to reap."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return finished == 0


def write_atomically(path: Path, text: str) -> None:
    """A reader sees the old content or the new, never half of it (also after a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def start_and_wait(
    command: list[str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    on_failure: Callable[[subprocess.Popen], None] = subprocess.Popen.kill,
    **popen,
) -> subprocess.Popen:
    """Start `command` with its output appended to `log`, and wait until `ready()`. If it
    exits, times out or the wait is interrupted (Ctrl-C), `on_failure` stops it first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, **popen)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise StartError(f"{what} did not start (log {log}):\n{tail}")
            time.sleep(0.1)
    except BaseException:
        on_failure(process)
        raise
    return process
