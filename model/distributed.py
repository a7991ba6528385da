"""Several processes: one per GPU on each host, launched by torchrun, joined by DDP.

`python -m model train` is the entry point on every host. When the job needs more than
one process and we are not yet under torchrun, it re-runs itself through torchrun.
"""

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model.contract import InputError

MASTER_PORT = 29500


@dataclass(frozen=True)
class Topology:
    hosts: list[str]
    current_host: str
    processes_per_host: int

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.processes_per_host

    @classmethod
    def from_resource_config(cls, config: dict, processes_per_host: int | None) -> "Topology":
        hosts = config.get("hosts") or ["localhost"]
        gpus = torch.cuda.device_count()
        if gpus and processes_per_host and processes_per_host > gpus:
            raise InputError(
                f"POSTWERK_PROCESSES_PER_HOST={processes_per_host} is more than the "
                f"{gpus} GPU(s) of this host: one process per GPU"
            )
        return cls(
            hosts=sorted(hosts),
            current_host=config.get("current_host", hosts[0]),
            processes_per_host=processes_per_host or max(1, gpus),
        )


def under_launcher() -> bool:
    return "LOCAL_RANK" in os.environ


def launch(topology: Topology) -> int:
    """Run `python -m model train` under torchrun on this host; returns its exit code."""
    if len(topology.hosts) == 1:
        rendezvous = ["--standalone"]  # a free local port; host names need not resolve
    else:
        rendezvous = [
            f"--nnodes={len(topology.hosts)}",
            f"--node-rank={topology.hosts.index(topology.current_host)}",
            # MASTER_ADDR (torchrun's own variable) where the first host's name does not
            # resolve: several hosts as processes of one machine
            f"--master-addr={os.environ.get('MASTER_ADDR') or topology.hosts[0]}",
            f"--master-port={MASTER_PORT}",
        ]
    command = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc-per-node={topology.processes_per_host}", *rendezvous,
        "-m", "model", "train",
    ]  # fmt: skip
    print(f"launching {topology.world_size} processes over {len(topology.hosts)} host(s)")
    return subprocess.run(command, check=False).returncode


@dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start_process() -> Process:
    """Join the process group when launched by torchrun; pick this process's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not under_launcher():
        return Process(rank=0, world_size=1, device=device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Process(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def stop_process() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
