"""Several processes: DDP under ``torchrun`` (gloo on CPU, nccl on CUDA); rank 0 alone writes.

``torchrun`` (or ``python -m torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them training is a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from p2p_deploy.errors import P2PError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group torchrun prepared (no-op for a single process).

    Raises:
        P2PError: CUDA training with more processes on this machine than it has GPUs (each
            rank needs a GPU of its own; torch would fail with "invalid device ordinal").
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
    gpus = torch.cuda.device_count() if use_cuda else 0
    if use_cuda and local_world > gpus:
        raise P2PError(
            f"torchrun started {local_world} processes on this machine but it has {gpus} "
            f"GPU{'s' if gpus != 1 else ''}: one process per GPU (--nproc-per-node {gpus}), "
            "or --device cpu to train on the CPU with gloo."
        )
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        log.debug("rank %d/%d joined the %s process group", rank, world, backend)
    return DistInfo(rank, world, local_rank)


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``values`` over ranks (a NaN on any rank makes the result NaN everywhere)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= info.world
    return values


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
