"""One process on the CPU or a GPU, or many under torchrun (``torch.distributed``): the process group, the device,
and a deterministic, resumable sampler that splits each epoch over the processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from easyocc.devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_*``), or run
    alone, on the device ``device_preference`` names (:func:`easyocc.devices.resolve_device`; ``auto`` and ``cuda``
    are the local rank's GPU). NCCL on GPUs, gloo on the CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank, world_size, local_rank, device)


def shutdown_distributed(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over the processes, in place (a no-op alone)."""
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one process: a permutation drawn from (seed, epoch), padded by wrapping to a
    multiple of ``num_replicas`` and dealt round-robin (as ``DistributedSampler``). ``set_epoch(epoch, start)``
    skips the process's first ``start`` indices, so a run resumed mid-epoch sees exactly the rest of that epoch.
    """

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.num_replicas, self.rank = size, num_replicas, rank
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start = 0, 0

    @property
    def per_replica(self) -> int:
        return -(-self.size // self.num_replicas)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        padded = (order * (self.per_replica * self.num_replicas // self.size + 1))[: self.per_replica * self.num_replicas]
        return padded[self.rank :: self.num_replicas][self.start :]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return self.per_replica - self.start
