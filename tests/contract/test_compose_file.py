"""docker-compose.yml and the Dockerfiles, checked without a Docker engine (tests/compose
runs them on one): the Compose Specification schema, references that must resolve, and the
choices docs/emulation.md promises (ports on 127.0.0.1 only, healthchecks, pinned bases, the
Python the Lambda functions are packaged for)."""

import copy
import json
import re
import subprocess
import tomllib

import pytest
import yaml
from compose_spec import PyCompose

from postwerk import compose as backend
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
    assert set(spec.services) == {
        *("aws", "sagemaker", "mapping-runner", "smtp", "mailbox-door", "model"),
    }


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


def test_published_ports_are_local_only_and_the_emulator_is_the_embedded_backends(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    command = compose["services"]["aws"]["command"]
    assert command[:4] == ["python", "-m", "emulation.ministack", "serve"], "as the tests ran it"


def test_images_build_on_a_pinned_base_that_is_an_argument():
    for dockerfile in ("model/Dockerfile", "emulation/Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        assert re.findall(r"^FROM\s+(\S+)", text, re.M)[-1] == "${BASE_IMAGE}", dockerfile
        default = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)
        assert default == backend.DEFAULT_BASE_IMAGE, dockerfile
    repository, _, tag = backend.DEFAULT_BASE_IMAGE.partition(":")
    assert repository and tag.startswith(f"{backend.LAMBDA_PYTHON}-"), "the functions' Python"


def test_the_images_install_what_pyproject_lists():
    """Their requirements are read from pyproject.toml at build time, not copied."""
    emulation = (ROOT / "emulation" / "Dockerfile").read_text()
    model = (ROOT / "model" / "Dockerfile").read_text()
    assert "['optional-dependencies']['emulation']" in emulation and "torch" not in emulation
    assert "['project']['dependencies']" in model
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "docker>=7" in extras["optional-dependencies"]["emulation"], "what starts containers"


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
