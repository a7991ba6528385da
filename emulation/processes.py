"""What every local stand-in for AWS shares, for emulation/ and the `postwerk` command alike:
the loopback host, free ports, the dummy credentials, files written atomically, starting a
process that is ready once it answers, and stopping processes with all they started."""

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import psutil  # imported on use: `postwerk` imports this module at start-up

HOST = "127.0.0.1"
KILL_WAIT_SECONDS = 1  # for the kernel to end what got SIGKILL, and to reap it
DUMMY_CREDENTIALS = {
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


class StartError(Exception):
    """The process exited or did not become ready in time; the message holds its log's end."""


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now, all different: each probe stays bound until all are
    picked (one after another, the OS may hand out the same port twice)."""
    with ExitStack() as probes:
        bound = [probes.enter_context(socket.socket()) for _ in range(count)]
        for probe in bound:
            probe.bind((HOST, 0))
        return [probe.getsockname()[1] for probe in bound]


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


# A process to stop: a child started here stays its subprocess.Popen, so that its exit code
# is read (and it is reaped) by its own wait(), which psutil.wait_procs calls.
Stoppable: TypeAlias = "subprocess.Popen | psutil.Process"


def process_tree(root: subprocess.Popen | int) -> list[Stoppable]:
    """The process and every process below it now; none when it has ended."""
    import psutil

    if isinstance(root, subprocess.Popen):
        return with_descendants([root]) if root.poll() is None else []
    try:
        return with_descendants([psutil.Process(root)])
    except psutil.NoSuchProcess:
        return []


def with_descendants(processes: Iterable[Stoppable]) -> list[Stoppable]:
    """The processes, and every process below those still running."""
    import psutil

    found = {process.pid: process for process in processes}
    for process in list(found.values()):
        with suppress(psutil.NoSuchProcess):
            view = process if isinstance(process, psutil.Process) else psutil.Process(process.pid)
            for child in view.children(recursive=True):
                found.setdefault(child.pid, child)
    return list(found.values())


def stop_processes(
    processes: list[Stoppable], timeout: float, sigterm: list[Stoppable] | None = None
) -> None:
    """SIGTERM to `sigterm` (all of `processes` when None; a process that stops its own
    children in order gets it alone), wait until all of `processes` have ended, `timeout`
    seconds at most, then SIGKILL to those left and to whatever they started meanwhile."""
    import psutil

    for process in processes if sigterm is None else sigterm:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, left = psutil.wait_procs(processes, timeout=timeout)
    left = with_descendants(left)
    for process in left:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(left, timeout=KILL_WAIT_SECONDS)
