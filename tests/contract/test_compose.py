"""docker-compose.yml and the Dockerfiles, checked without a Docker engine (none runs on
these machines): the Compose Specification schema, references that must resolve, and the
choices the README promises (pinned emulator, ports on 127.0.0.1 only, healthchecks)."""

import copy
import json
import re
import subprocess
import tomllib

import pytest
import yaml
from compose_spec import PyCompose

from emulation import ministack
from tests.support.jobs import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def interpolated(text: str) -> str:
    """${NAME:-default} as Compose resolves it with NAME unset."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda match: match.group(2) or "", text)


@pytest.fixture(scope="module")
def compose() -> dict:
    # PyYAML resolves the anchors and merge keys (as Compose does) before the schema check.
    return yaml.safe_load(interpolated(COMPOSE.read_text()))


def test_the_file_follows_the_compose_specification(compose):
    spec = PyCompose.from_json(json.dumps(compose)).to_spec()
    assert set(spec.services) == {"localstack", "ministack", "sagemaker", "mapping-runner", "model"}


def test_a_broken_file_would_fail_the_check(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["sagemaker"]["ports"] = 4567
    with pytest.raises(ValueError, match="invalid type"):
        PyCompose.from_json(json.dumps(broken)).to_spec()


def test_references_resolve(compose):
    services = compose["services"]
    builds = [service["build"] for service in services.values() if "build" in service]
    dockerfiles = [ROOT / build["context"] / build["dockerfile"] for build in builds]
    assert dockerfiles and [path for path in dockerfiles if not path.is_file()] == []
    awaited = {dependency for service in services.values()
               for dependency, how in service.get("depends_on", {}).items()
               if how["condition"] == "service_healthy"}  # fmt: skip
    assert awaited and [name for name in awaited if "healthcheck" not in services[name]] == []
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("/") or source in compose["volumes"], volume
    built = {service["image"] for service in services.values() if "build" in service}
    used = {service["image"] for service in services.values() if "build" not in service}
    assert "postwerk-emulation:latest" in built & used, "the runner uses the image built here"
    assert "postwerk-model:latest" in built, "the image the SageMaker service starts"


def test_published_ports_are_local_only_and_the_emulators_are_pinned(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert compose["services"]["localstack"]["image"] == "localstack/localstack:4.14.0"
    embedded = next(r for r in ministack.REQUIREMENTS if r.startswith("ministack=="))
    pinned = compose["services"]["ministack"]["image"]
    assert pinned == f"ministackorg/ministack:{embedded.split('==')[1]}", "as the tests ran it"


def test_every_external_image_is_pinned_to_a_version(compose):
    built = {service["image"] for service in compose["services"].values() if "build" in service}
    for name, service in compose["services"].items():
        if service["image"] not in built:  # an image pulled from a registry
            repository, _, tag = service["image"].rpartition(":")
            assert repository and tag not in ("", "latest"), f"{name}: {service['image']}"
    for dockerfile in ("model/Dockerfile", "emulation/Dockerfile"):
        for base in re.findall(r"^FROM\s+(\S+)", (ROOT / dockerfile).read_text(), re.M):
            assert ":" in base and not base.endswith(":latest"), f"{dockerfile}: {base}"


def test_the_emulation_image_installs_exactly_the_emulation_extra():
    dockerfile = (ROOT / "emulation" / "Dockerfile").read_text()
    installed = set(re.findall(r'"([A-Za-z][\w.-]*[<>=!~][^"]*)"', dockerfile))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert installed == set(extras["optional-dependencies"]["emulation"])
    assert "torch" not in dockerfile


def test_the_emulation_image_copies_every_module_it_imports_from_outside_emulation():
    copied = set()
    for sources in re.findall(
        r"^COPY\s+(.+)\s+\S+$", (ROOT / "emulation" / "Dockerfile").read_text(), re.M
    ):
        copied |= set(sources.split())
    imported = {
        match.replace(".", "/") + ".py"
        for path in (ROOT / "emulation").rglob("*.py")
        for match in re.findall(
            r"^\s*from ((?:model|services|postwerk)\.[\w.]+) import", path.read_text(), re.M
        )
    }
    assert imported and imported <= copied, f"not copied: {imported - copied}"
    for module in imported:  # packages' __init__ too, and nothing heavy imported at the top
        assert f"{module.split('/')[0]}/__init__.py" in copied


@pytest.mark.live
@pytest.mark.parametrize("dockerfile", ["model/Dockerfile", "emulation/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), str(ROOT / dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert hadolint.returncode == 0, hadolint.stdout + hadolint.stderr
