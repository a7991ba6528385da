"""The local AWS behind `postwerk up` and `postwerk down`: start it in the background, find
it again, stop it.

embedded: `python -m emulation` (MiniStack, the SageMaker service, the mapping runner) as
one background process. It writes the ready file (`<state dir>/local.json`: the exports
and its PIDs) once everything answers, which is how `up` knows it may go on and how
`env`, `status` and `down` find it later.
compose: the images built, then `docker compose up --wait` with the project's
docker-compose.yml (postwerk/compose.py); the ready file then holds the exports of its
published ports.
"""

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from emulation.processes import (
    DUMMY_CREDENTIALS,
    StartError,
    alive,
    port_in_use,
    process_tree,
    start_and_wait,
    stop_processes,
    write_atomically,
)
from postwerk import compose
from postwerk.errors import CommandError
from postwerk.settings import REPO_ROOT

BACKENDS = ("embedded", "compose")
STOP_SECONDS = 13  # the launcher bounds its own stop to about 11 s; past this, SIGKILL


class LocalError(CommandError):
    """The local AWS could not start or stop; the message says why and what to do."""


@dataclass(frozen=True)
class LocalAws:
    backend: str
    env: dict[str, str]  # what boto3 and the aws CLI need to reach it
    pids: list[int]  # embedded: the launcher first, then MiniStack and the SageMaker service
    stacks: dict[str, dict[str, str]] = field(default_factory=dict)  # name: its exports


def choose_backend(requested: str | None) -> tuple[str, str]:
    """The backend to use and why: the requested one, else compose when Docker answers."""
    if requested:
        if requested not in BACKENDS:
            raise LocalError(f"BACKEND={requested}: choose one of {', '.join(BACKENDS)}")
        return requested, f"BACKEND={requested}"
    if compose.engine_answers():
        return "compose", "a Docker engine answers"
    return "embedded", "no Docker engine reachable"


def ready_file(state_dir: Path) -> Path:
    return state_dir / "local.json"


def find(state_dir: Path) -> LocalAws | None:
    """The local AWS that `up` started, if it still runs (a stale ready file is removed)."""
    try:
        recorded = json.loads(ready_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    stacks = recorded.get("stacks", {})
    found = LocalAws(recorded["backend"], recorded["env"], recorded["pids"], stacks)
    if found.backend == "embedded" and not alive(found.pids[0]):
        ready_file(state_dir).unlink(missing_ok=True)
        return None
    if found.backend == "compose" and not compose.running_services():
        ready_file(state_dir).unlink(missing_ok=True)
        return None
    return found


def remember_stack(state_dir: Path, name: str, exports: dict[str, str]) -> None:
    """What `env` prints for a stack deployed to the running local AWS (its bucket and role):
    kept in the ready file, so `env` answers without asking AWS."""
    recorded = json.loads(ready_file(state_dir).read_text())
    recorded["stacks"] = recorded.get("stacks", {}) | {name: exports}
    write_atomically(ready_file(state_dir), json.dumps(recorded, indent=2))


def ensure_free(ports: Iterable[int]) -> None:
    for port in ports:
        if port_in_use(port):
            raise LocalError(
                f"port {port} is in use by another program; stop it, or choose other ports "
                f"(POSTWERK_AWS_PORT, POSTWERK_SAGEMAKER_PORT, POSTWERK_SMTP_PORT)"
            )


def parts(found: LocalAws) -> str:
    """What runs: the embedded backend's processes, or the Compose project's containers."""
    if found.backend == "compose":
        services = sorted(compose.running_services().items())
        return "containers " + ", ".join(f"{name} {state}" for name, state in services)
    return f"processes {[pid for pid in found.pids if alive(pid)]}"


def start_embedded(state_dir: Path, aws_port: int, sagemaker_port: int, smtp_port: int) -> LocalAws:
    """`python -m emulation` in the background, in its own session, until it is ready."""
    ensure_free((aws_port, sagemaker_port, smtp_port))
    ready = ready_file(state_dir)
    command = [
        *(sys.executable, "-m", "emulation", "--state-dir", str(state_dir)),
        *("--port", str(aws_port), "--sagemaker-port", str(sagemaker_port)),
        *("--smtp-port", str(smtp_port)),
        *("--ready-file", str(ready)),
    ]
    try:
        start_and_wait(
            command,
            state_dir / "logs" / "emulation.log",
            ready.exists,
            timeout=600,  # the first run installs MiniStack into its own venv
            what="the local AWS",
            # also on Ctrl-C: what started so far stops with the launcher
            on_failure=lambda process: terminate([process.pid], STOP_SECONDS),
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    except StartError as error:
        raise LocalError(str(error)) from None
    recorded = json.loads(ready.read_text())
    return LocalAws("embedded", recorded["env"], recorded["pids"])


def start_compose(state_dir: Path, ports: dict[str, int], say: Callable[[str], None]) -> LocalAws:
    """Check what Compose needs, build the images, `up --wait` (the healthchecks)."""
    ensure_free(ports.values())
    project, build = compose.prepare(dict(os.environ), ports)
    say(f"building the images (base {build.base_image}) ...")
    project.build()
    env = DUMMY_CREDENTIALS | {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['aws']}",
        "AWS_ENDPOINT_URL_SAGEMAKER": f"http://127.0.0.1:{ports['sagemaker']}",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{ports['sagemaker']}",
        "POSTWERK_SMTP_PORT": str(ports["smtp"]),
    }
    # written before the containers start: whatever stops `up` from here on (Ctrl-C, a
    # kill) leaves `down` the file that says what to stop
    ready = {"backend": "compose", "env": env, "pids": []}
    write_atomically(ready_file(state_dir), json.dumps(ready, indent=2))
    say("starting the containers ...")
    project.up()
    return LocalAws("compose", env, [])


def stop(state_dir: Path) -> LocalAws | None:
    """Stop what `up` started; None when nothing ran."""
    found = find(state_dir)
    if found is None:
        return None
    if found.backend == "compose":
        stop_compose()
    else:
        terminate(found.pids, STOP_SECONDS)
    ready_file(state_dir).unlink(missing_ok=True)
    return found


def terminate(pids: list[int], timeout: float) -> None:
    """SIGTERM to the launcher (pids[0]), which stops its children; after the timeout,
    SIGKILL to every process below the PIDs that is still there."""
    processes = [process for pid in pids for process in process_tree(pid)]
    launcher = [process for process in processes if process.pid == pids[0]]
    stop_processes(processes, timeout, sigterm=launcher)


def stop_compose() -> None:
    """The SageMaker service first (it stops its jobs and replicas), then whatever of those
    it left, then `docker compose down`: no container or network stays, the volumes that
    keep the model do."""
    project = compose.Compose(compose.compose_command())
    project.run("stop", "sagemaker")
    compose.remove_jobs_and_replicas()
    project.down()
