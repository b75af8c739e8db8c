"""Pooled training on several processes: torch's DistributedDataParallel under `torchrun`.

`coordinator model train --nproc N` starts itself again under `torchrun --standalone` (N processes
on this machine; `gloo` on the CPU, `nccl` on GPUs, one GPU per process). Every process draws the
same class-balanced order of cases each epoch and trains on its own equal share of it, so the
global batch and the epoch are those of one process; gradients are averaged by DDP. Process 0
alone scores the validation cases, decides early stopping for all, and writes the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch import nn

from shared.devices import choose_device


@dataclass(frozen=True)
class World:
    rank: int
    size: int

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def device(self, wanted: str) -> torch.device:
        device = choose_device(wanted)
        if self.size > 1 and device.type == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank)))
        return device

    def wrap(self, net: nn.Module | None) -> nn.Module | None:
        """The network to train with: DDP over every process, or the network itself when alone."""
        if net is None or self.size == 1:
            return net
        device = next(net.parameters()).device
        return nn.parallel.DistributedDataParallel(
            net, device_ids=[device] if device.type == "cuda" else None
        )

    def share(self, order: NDArray[np.int64]) -> NDArray[np.int64]:
        """This process's share of the epoch's order, equal in length on every process (DDP needs the
        same number of steps everywhere; at most size - 1 draws of the epoch are left out)."""
        if self.size == 1:
            return order
        usable = len(order) - len(order) % self.size
        return order[self.rank : usable : self.size]

    def agree(self, flag: bool) -> bool:
        """Process 0's decision, for everyone."""
        if self.size == 1:
            return flag
        value = torch.tensor([int(flag)])
        dist.broadcast(value, src=0)
        return bool(value.item())

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def join_world(wanted_device: str) -> World:
    """The processes started by torchrun (from its environment), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1)
    if not dist.is_initialized():
        backend = "nccl" if choose_device(wanted_device).type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return World(dist.get_rank(), dist.get_world_size())


def leave_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def run_under_torchrun(nproc: int, argv: list[str]) -> int:
    """Run `coordinator ARGV` as `nproc` processes on this machine; their exit status."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a rendezvous on a free local port: nothing listens beyond this machine
        f"--nproc-per-node={nproc}",
        "-m",
        "coordinator",
        *argv,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, _cores() // nproc)))}
    return subprocess.run(command, env=env, check=False).returncode


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
