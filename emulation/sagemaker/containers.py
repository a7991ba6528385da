"""How training jobs and endpoint replicas run: the SageMaker container contract, started
as processes of this venv (`python -m model train|serve`, the embedded backend) or as
Docker containers of the job's image (the compose backend, GPU when the host has one).

Both give the service the same few calls: `train` and `serve` start a run, and a run is
what `subprocess.Popen` offers (`stdout` lines, `poll`, `wait`, `returncode`); `terminate`
stops it as SageMaker does (SIGTERM, SIGKILL after a grace period).

A job on several instances runs one training container per host (`train(..., host=...)`):
as processes they find each other on 127.0.0.1 (MASTER_ADDR, gloo on the loopback); as
containers they join a network of the job's own under their host names (algo-1 ... algo-N),
which `release(job)` removes when the job is over.
"""

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from emulation.processes import HOST, free_port, process_tree, stop_processes

SERVING_PORT = 8080  # inside a container, as SageMaker runs it


class Run(Protocol):
    stdout: Iterator[str]
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class LocalProcesses:
    def __init__(self, python: str):
        self.python = python

    def train(
        self, image: str, base_dir: Path, environment: dict[str, str], host="", job=""
    ) -> Run:
        # the hosts of a multi-instance job are all this machine
        local = {"MASTER_ADDR": HOST, "GLOO_SOCKET_IFNAME": "lo"} if host else {}
        return self._start("train", base_dir, environment | local)

    def release(self, job: str) -> None:
        """Nothing to clean up after the hosts of a job."""

    def serve(self, image: str, base_dir: Path, environment: dict[str, str]) -> tuple[Run, str]:
        port = free_port()
        contract = {"SAGEMAKER_BIND_TO_PORT": str(port), "POSTWERK_BIND_HOST": HOST}
        return self._start("serve", base_dir, environment | contract), f"http://{HOST}:{port}"

    def terminate(self, run: subprocess.Popen, grace_seconds: float) -> int:
        """SIGTERM to the run and every process below it, SIGKILL after the grace."""
        stop_processes(process_tree(run), grace_seconds)
        return run.wait()

    def _start(self, command: str, base_dir: Path, environment: dict[str, str]):
        return subprocess.Popen(
            [self.python, "-m", "model", command],
            env=os.environ
            | environment
            | {"SAGEMAKER_BASE_DIR": str(base_dir), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopped with its children
        )


class DockerContainers:
    """Runs of the job's image through the Docker API.

    The job folder reaches the container one of two ways. With `state_volume` (the service
    itself runs in Compose), the named volume that holds the service's state (state_dir) is
    mounted at the same path, so paths mean the same on both sides. Without it (the service runs on
    the host), the job folder is bind-mounted at /opt/ml. Replicas join `network` and are
    addressed by name, or publish their port on 127.0.0.1 when there is no network.
    """

    def __init__(self, client, state_dir: Path, network="", state_volume="", gpus="auto"):
        self.client = client
        self.state_dir = state_dir
        self.network = network
        self.state_volume = state_volume
        self.device_requests = self._device_requests(gpus)

    def train(
        self, image: str, base_dir: Path, environment: dict[str, str], host="", job=""
    ) -> Run:
        if not host:
            return self._start(image, "train", base_dir, environment, self._name("train"))
        from docker.types import EndpointConfig

        network = self._job_network(job)
        aliases = {network: EndpointConfig(self.client.api._version, aliases=[host])}
        return self._start(
            image, "train", base_dir, environment, self._name("train"),
            network=network, hostname=host, networking_config=aliases,
        )  # fmt: skip

    def release(self, job: str) -> None:
        """Remove the network of a multi-instance job, if it had one."""
        for network in self.client.networks.list(names=[f"postwerk-job-{job}"]):
            network.remove()

    def _job_network(self, job: str) -> str:
        name = f"postwerk-job-{job}"
        if not self.client.networks.list(names=[name]):
            self.client.networks.create(name, driver="bridge", labels={"postwerk.job": job})
        return name

    def serve(self, image: str, base_dir: Path, environment: dict[str, str]) -> tuple[Run, str]:
        name = self._name("serve")
        if self.network:
            run = self._start(image, "serve", base_dir, environment, name)
            return run, f"http://{name}:{SERVING_PORT}"
        port = free_port()
        ports = {f"{SERVING_PORT}/tcp": (HOST, port)}
        return self._start(
            image, "serve", base_dir, environment, name, ports
        ), f"http://{HOST}:{port}"

    def terminate(self, run: "ContainerRun", grace_seconds: float) -> int:
        """`docker stop` (SIGTERM, SIGKILL after the grace), then remove the container."""
        run.container.stop(timeout=int(grace_seconds))
        code = run.wait()
        run.container.remove(force=True)
        return code

    def _start(
        self, image, command, base_dir, environment, name, ports=None, **placement
    ) -> "ContainerRun":
        """`placement`: network, hostname and networking_config of a host of a job."""
        if self.state_volume:
            volumes = {self.state_volume: {"bind": str(self.state_dir), "mode": "rw"}}
            base = str(base_dir)
        else:
            volumes = {str(base_dir): {"bind": "/opt/ml", "mode": "rw"}}
            base = "/opt/ml"
        container = self.client.containers.run(
            image,
            command,
            name=name,
            detach=True,
            environment=environment | {"SAGEMAKER_BASE_DIR": base, "PYTHONUNBUFFERED": "1"},
            volumes=volumes,
            ports=ports,
            device_requests=self.device_requests,
            labels={"postwerk.role": command},
            init=True,  # `python -m model` is not PID 1, so SIGTERM stops it as on SageMaker
            **({"network": self.network or None} | placement),
        )
        return ContainerRun(container)

    def _device_requests(self, gpus: str) -> list | None:
        """All GPUs when asked, or on auto when the engine has the NVIDIA runtime."""
        if gpus == "none":
            return None
        if gpus == "auto" and "nvidia" not in self.client.info().get("Runtimes", {}):
            return None
        from docker.types import DeviceRequest

        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]

    @staticmethod
    def _name(command: str) -> str:
        return f"postwerk-{command}-{secrets.token_hex(4)}"


class ContainerRun:
    """A started container, with the parts of subprocess.Popen that the service uses."""

    def __init__(self, container):
        self.container = container
        self.returncode: int | None = None
        self.stdout = self._lines()

    def poll(self) -> int | None:
        if self.returncode is None:
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.container.wait(timeout=timeout)["StatusCode"]
        return self.returncode

    def _lines(self) -> Iterator[str]:
        """The container's output (stdout and stderr) line by line, until it exits."""
        pending = b""
        for chunk in self.container.logs(stream=True, follow=True):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode(errors="replace") + "\n"
        if pending:
            yield pending.decode(errors="replace")


Containers = LocalProcesses | DockerContainers


def containers_from(settings) -> Containers:
    """The backend the service's settings name."""
    if settings.containers == "processes":
        return LocalProcesses(settings.python)
    import docker

    return DockerContainers(
        docker.from_env(),
        settings.state_dir,
        settings.docker_network,
        settings.docker_state_volume,
        settings.gpus,
    )
