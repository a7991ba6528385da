"""The SageMaker service's Docker path (compose backend), with the Docker SDK mocked at its
boundary: no Docker engine runs on these machines. What is checked is what we ask of
Docker: image, command, mounts, network, GPUs, stop semantics."""

from pathlib import Path
from unittest import mock

import pytest

from emulation.sagemaker.containers import ContainerRun, DockerContainers, containers_from
from emulation.sagemaker.settings import ServiceSettings


def docker_client(runtimes=("runc",)):
    client = mock.Mock()
    client.info.return_value = {"Runtimes": {name: {} for name in runtimes}}
    return client


def run_arguments(client) -> tuple[tuple, dict]:
    call = client.containers.run.call_args
    return call.args, call.kwargs


def test_training_runs_the_jobs_image_with_the_job_folder_as_opt_ml(tmp_path):
    client = docker_client()
    containers = DockerContainers(client, tmp_path)
    containers.train("postwerk-model:latest", tmp_path / "jobs" / "a", {"X": "1"})
    (image, command), options = run_arguments(client)
    assert (image, command) == ("postwerk-model:latest", "train")
    assert options["volumes"] == {str(tmp_path / "jobs" / "a"): {"bind": "/opt/ml", "mode": "rw"}}
    assert options["environment"]["SAGEMAKER_BASE_DIR"] == "/opt/ml"
    assert options["environment"]["X"] == "1"
    assert options["device_requests"] is None, "no NVIDIA runtime, no GPU request"
    assert options["detach"] is True


def test_in_compose_the_state_volume_is_mounted_at_the_same_path_and_replicas_go_by_name():
    client = docker_client(runtimes=("runc", "nvidia"))
    state = Path("/var/lib/postwerk/sagemaker")
    containers = DockerContainers(client, state, network="postwerk", state_volume="sm-state")
    _, url = containers.serve("img", state / "endpoints" / "e" / "1", {})
    _, options = run_arguments(client)
    assert options["volumes"] == {"sm-state": {"bind": str(state), "mode": "rw"}}
    assert options["environment"]["SAGEMAKER_BASE_DIR"] == str(state / "endpoints/e/1")
    assert options["network"] == "postwerk" and options["ports"] is None
    assert url == f"http://{options['name']}:8080"
    [request] = options["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]


def test_outside_compose_a_replica_publishes_its_port_on_localhost_only(tmp_path):
    client = docker_client()
    _, url = DockerContainers(client, tmp_path, gpus="none").serve("img", tmp_path, {})
    _, options = run_arguments(client)
    [(host, port)] = options["ports"].values()
    assert host == "127.0.0.1" and url == f"http://127.0.0.1:{port}"
    assert options["network"] is None


@pytest.mark.parametrize(("gpus", "runtimes", "wanted"), [
    ("all", ("runc",), True), ("none", ("nvidia",), False), ("auto", ("nvidia",), True),
])  # fmt: skip
def test_gpu_requests_follow_the_setting(tmp_path, gpus, runtimes, wanted):
    client = docker_client(runtimes)
    DockerContainers(client, tmp_path, gpus=gpus).train("img", tmp_path, {})
    assert bool(run_arguments(client)[1]["device_requests"]) is wanted


def test_a_run_streams_lines_and_reports_the_exit_code():
    container = mock.Mock()
    container.logs.return_value = iter([b"epoch=1; loss", b"=0.5;\nsecond line\nlast"])
    container.wait.return_value = {"StatusCode": 3}
    container.status = "running"
    run = ContainerRun(container)
    assert list(run.stdout) == ["epoch=1; loss=0.5;\n", "second line\n", "last"]
    assert run.poll() is None
    container.status = "exited"
    assert run.poll() == 3 and run.returncode == 3


def test_terminate_stops_with_the_grace_then_removes(tmp_path):
    client = docker_client()
    containers = DockerContainers(client, tmp_path)
    run = containers.train("img", tmp_path, {})
    run.container.wait.return_value = {"StatusCode": 143}
    assert containers.terminate(run, grace_seconds=30) == 143
    run.container.stop.assert_called_once_with(timeout=30)
    run.container.remove.assert_called_once_with(force=True)


def test_the_setting_picks_the_backend(monkeypatch, tmp_path):
    assert type(containers_from(ServiceSettings())).__name__ == "LocalProcesses"
    client = docker_client()
    monkeypatch.setattr("docker.from_env", lambda: client)
    monkeypatch.setenv("POSTWERK_SAGEMAKER_CONTAINERS", "docker")
    monkeypatch.setenv("POSTWERK_SAGEMAKER_DOCKER_NETWORK", "postwerk")
    chosen = containers_from(ServiceSettings())
    assert isinstance(chosen, DockerContainers) and chosen.network == "postwerk"
