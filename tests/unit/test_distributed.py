import subprocess

import pytest

from model import distributed
from model.contract import InputError
from model.distributed import Topology


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """The same answers on a GPU machine: these tests are about launching, not devices."""
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 0)


def launched_command(monkeypatch, topology: Topology) -> list[str]:
    commands = []

    def fake_run(command, check):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    assert distributed.launch(topology) == 0
    return commands[0]


def test_one_host_uses_a_standalone_rendezvous(monkeypatch):
    topology = Topology.from_resource_config({"current_host": "algo-1", "hosts": ["algo-1"]}, 2)
    command = launched_command(monkeypatch, topology)
    assert "--standalone" in command and "--nproc-per-node=2" in command
    assert command[-3:] == ["-m", "model", "train"]


def test_several_hosts_rendezvous_at_the_first(monkeypatch):
    resources = {"current_host": "algo-2", "hosts": ["algo-2", "algo-1", "algo-3"]}
    topology = Topology.from_resource_config(resources, 4)
    assert topology.world_size == 12
    command = launched_command(monkeypatch, topology)
    assert "--nnodes=3" in command
    assert "--node-rank=1" in command, "hosts are ordered by name: algo-2 is the second"
    assert "--master-addr=algo-1" in command


def test_processes_default_to_one_per_gpu(monkeypatch):
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 8)
    assert Topology.from_resource_config({}, None).processes_per_host == 8
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 0)
    assert Topology.from_resource_config({}, None).world_size == 1


def test_more_processes_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match="PROCESSES_PER_HOST=2 is more than the 1 GPU"):
        Topology.from_resource_config({}, 2)
