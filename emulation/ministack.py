"""The embedded AWS backend: a MiniStack server on 127.0.0.1, from its own virtualenv.

MiniStack pins botocore==1.43.106, so it cannot share the project's environment; its venv
also gets boto3==1.43.106, because Lambda handlers run on the server's own Python and
expect boto3 there, as on AWS. Everything it writes stays under one folder (the state dir).

MiniStack is an ASGI app; `python -m ministack` serves it with Hypercorn, whose pure-Python
HTTP parser (h11) and asyncio loop took about 40% of the CPU of each call (measured per
call type: PutObject with its S3 event, GetObject, ReceiveMessage, PutRecords). Here
uvicorn serves it, with httptools and uvloop, the server our own services use; the app's
lifespan does its start-up as before.

`python -m emulation.ministack install DIR` makes the venv under DIR, and
`python -m emulation.ministack serve DIR --host 0.0.0.0` runs the server in the foreground:
how the Compose backend's image (emulation/Dockerfile) makes and runs the same server.
"""

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from emulation.http_client import answers, request
from emulation.processes import (
    DUMMY_CREDENTIALS,
    HOST,
    StartError,
    alive,
    process_tree,
    start_and_wait,
    stop_processes,
)

REQUIREMENTS = [
    "ministack==1.5.33",
    "boto3==1.43.106",
    "uvicorn==0.55.0",
    "uvloop==0.23.0",
    "httptools==0.9.0",
]
KEEP_ALIVE_S = 75  # as `python -m ministack` (uvicorn's default is 5 s)


class BackendError(Exception):
    """The emulator could not be installed, started or reached; the message says why."""


@dataclass(frozen=True)
class MiniStack:
    state_dir: Path
    port: int
    persist_state: bool = False
    bind_host: str = HOST  # where it listens; endpoint_url is how this machine reaches it

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def venv(self) -> Path:
        return self.state_dir / "ministack-venv"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"ministack-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"ministack-{self.port}.log"

    @property
    def _stamp(self) -> Path:
        return self.venv / ".installed"

    def needs_install(self) -> bool:
        return not self._stamp.exists() or self._stamp.read_text() != " ".join(REQUIREMENTS)

    def install(self) -> Path:
        """Create the emulator's venv once (seconds); returns its Python."""
        python = self.venv / "bin" / "python"
        if not self.needs_install():
            return python
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", "--clear", str(self.venv)], "create MiniStack's venv")
        run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], "install MiniStack")
        self._stamp.write_text(" ".join(REQUIREMENTS))
        return python

    def start(self, timeout: float = 30) -> str:
        """Start the server (installing it if needed) and wait until healthy; returns its URL."""
        if self.running_pid():
            raise BackendError(f"MiniStack already runs (pid {self.running_pid()}); stop it first")
        if self.healthy():
            raise BackendError(f"port {self.port} already answers: another emulator runs there")
        command, environment = self.server_command()
        self.log_file.unlink(missing_ok=True)  # this run's log only
        try:
            process = start_and_wait(
                command,
                self.log_file,
                self.healthy,
                timeout,
                "MiniStack",
                on_failure=lambda process: stop_processes(process_tree(process), timeout=0),
                env=environment,
                cwd=self.state_dir,
                start_new_session=True,  # Ctrl-C in the terminal goes to us, not to it
            )
        except StartError as error:
            raise BackendError(str(error)) from None
        self.pid_file.write_text(str(process.pid))
        return self.endpoint_url

    def serve(self) -> None:
        """Become the server (a container's main process): it runs until stopped."""
        command, environment = self.server_command()
        os.chdir(self.state_dir)
        os.execve(command[0], command, environment)

    def server_command(self) -> tuple[list[str], dict[str, str]]:
        """The server's command line and environment (installing it if needed)."""
        python = self.install()
        tmp = self.state_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        command = [str(python), "-m", "uvicorn", "ministack.app:app", *self.server_options()]
        return command, os.environ | self.environment() | {"TMPDIR": str(tmp)}

    def server_options(self) -> list[str]:
        return [
            *("--host", self.bind_host, "--port", str(self.port)),
            *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
            # MiniStack's app adds the one Date AWS sends (its main turns Hypercorn's off too)
            *("--no-date-header", "--no-server-header"),
            *("--timeout-keep-alive", str(KEEP_ALIVE_S), "--timeout-graceful-shutdown", "1"),
        ]

    def environment(self) -> dict[str, str]:
        env = {"BIND_HOST": self.bind_host, "GATEWAY_PORT": str(self.port)}
        if self.persist_state:
            state = self.state_dir / "state"
            env |= {
                "PERSIST_STATE": "1",
                "STATE_DIR": str(state),
                "S3_PERSIST": "1",
                "S3_DATA_DIR": str(state / "s3"),
            }
        return env

    def stop(self, timeout: float = 10) -> bool:
        """SIGTERM to the server (found by its PID) and its workers, SIGKILL after `timeout`;
        False if none ran."""
        pid = self.running_pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        stop_processes(process_tree(pid), timeout)
        return True

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def healthy(self) -> bool:
        return answers(f"{self.endpoint_url}/_ministack/health")

    def client_environment(self) -> dict[str, str]:
        """What plain boto3 (or the aws CLI) needs to talk to this backend."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **DUMMY_CREDENTIALS}

    def reset(self) -> None:
        """Forget every resource: the quick way to give each test a clean AWS."""
        status, body = request("POST", f"{self.endpoint_url}/_ministack/reset", timeout=10)
        if status != 200:
            raise BackendError(f"MiniStack reset failed: {status} {body.decode(errors='replace')}")


def main() -> None:
    parser = argparse.ArgumentParser(description="MiniStack as postwerk runs it")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="make its venv under STATE_DIR").add_argument(
        "state_dir", type=Path
    )
    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("state_dir", type=Path)
    serve.add_argument("--host", default=HOST)
    serve.add_argument("--port", type=int, default=4566)
    args = parser.parse_args()
    if args.command == "install":
        MiniStack(args.state_dir, 0).install()
    else:
        MiniStack(args.state_dir, args.port, persist_state=True, bind_host=args.host).serve()


def run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackendError(f"could not {what}: {result.stderr.strip()[-2000:]}")


if __name__ == "__main__":
    main()
