"""Training on several processes (GPUs) with PyTorch DistributedDataParallel, launched by torchrun.

``torchrun --standalone --nproc-per-node N -m pipelines.dance.jobs <target dir>`` (what
``python -m pipelines dance-train --nproc N`` runs) starts N copies of the training job; torchrun
sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, and :func:`setup` joins them into one process
group (NCCL on CUDA, one GPU per process; gloo on CPU). The rules that keep N processes equal to
one process with the same global batch and seed:

* every process draws the same global batch from the same seeded generator and trains on its
  own contiguous slice (:func:`shard`); DDP averages the gradients, which equals the gradient of
  the batch mean one process computes (every loss here is a mean over equal-sized samples);
* weights start equal (same seed; DDP also broadcasts rank 0's at wrap time) and stay equal,
  so every process holds the whole model and rank 0 alone writes checkpoints, previews and
  status; a checkpoint holds no trace of N, so it resumes under any process count;
* decisions that depend on the clock or on files (stop, time budget, stage) are rank 0's,
  broadcast each step (:func:`agree`), so no process leaves the loop alone.

BatchNorm (the face discriminator) normalises over each process's slice; on CUDA it is
converted to SyncBatchNorm so the statistics are the global batch's, on CPU (gloo) it stays
per process (SyncBatchNorm needs a GPU), the one place where N CPU processes differ from one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipelines.common.device import pick_device
from pipelines.common.errors import InputError

# Rank 0 may prepare the data (pose detection of a long video) while the others wait.
SETUP_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """The world torchrun describes in the environment (none: a single process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"])), size)


def setup(preferred_device: str | None = None) -> tuple[World, torch.device]:
    """Join the process group torchrun started (if any) and pick this process's device."""
    world = from_env()
    device = pick_device(preferred_device)
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise InputError(f"Several training processes need CUDA or CPU, not {device.type}.")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=SETUP_TIMEOUT)
    return world, device


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise InputError(f"The batch ({batch_size}) must split evenly over {world.size} processes.")


def shard(global_batch: np.ndarray, world: World) -> np.ndarray:
    """This process's contiguous slice of the global batch."""
    per = len(global_batch) // world.size
    return global_batch[world.rank * per : (world.rank + 1) * per]


def wrap(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``module`` under DDP (gradients averaged over the processes), or itself for one process."""
    if not world.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def mean(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """The per-process values averaged over the processes (the global batch's losses)."""
    if not world.distributed or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world.size).tolist(), strict=True))


def agree(values: list[float], world: World, device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every process (stop flags, elapsed time...)."""
    if not world.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return t.tolist()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def torchrun_command(nproc: int, module: str, *args: str) -> list[str]:
    """The torchrun invocation of ``python -m module args`` on ``nproc`` local processes."""
    if nproc < 1:
        raise InputError("--nproc must be at least 1.")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", module, *args]
