"""Data-parallel training under ``torchrun``: one process per rank, gradients averaged by DDP.

Every rank draws the *same* global batch from the same seeded generator and trains on its own
contiguous share of it, so a run on W ranks with global batch B follows the one-process run
with batch B (up to floating-point summation order): the averaged gradient is the gradient of
the global mean loss. Sampling the global batch on every rank costs little (crops of a
pre-degraded bank); the unrolled restorer, which is what costs, runs on the share only.

Process group: NCCL when training on CUDA, gloo on CPU. Checkpoints are written by rank 0
alone and read by every rank on resume, so ``--work-dir`` must be on a file system all ranks
see (one node: any folder).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

from durr.infer.distributed import World

__all__ = ["World", "training_session", "share", "barrier", "rank_zero_first", "gather_chunks", "all_mean", "wrap_ddp", "device_for"]


def device_for(world: World, device: torch.device) -> torch.device:
    """The CUDA device of this rank (``cuda:LOCAL_RANK``) when training on CUDA, else ``device``."""
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


@contextmanager
def training_session(world: World, device: torch.device) -> Iterator[World]:
    """Initialise the process group (NCCL on CUDA, gloo on CPU) when there are several ranks."""
    created = False
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=world.rank, world_size=world.size)
        created = True
    try:
        yield world
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def share(batch: int, world: World) -> slice:
    """This rank's rows of a global batch of ``batch`` rows (equal shares; else a clear error)."""
    if batch % world.size:
        raise ValueError(f"the global batch ({batch}) must be a multiple of the number of ranks ({world.size})")
    size = batch // world.size
    return slice(world.rank * size, (world.rank + 1) * size)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def rank_zero_first(world: World, make):
    """``make()`` on rank 0, then on the other ranks once rank 0 is done.

    For work that caches to a shared file (degradation banks): rank 0 builds and writes it,
    the others read the cache instead of building it again. Returns ``make()``'s result.
    """
    if world.rank == 0:
        result = make()
        barrier(world)
        return result
    barrier(world)
    return make()


def gather_chunks(chunks: dict[int, list[torch.Tensor]], world: World) -> list[torch.Tensor]:
    """Work split in numbered chunks over ranks, put back together in chunk order.

    chunks : this rank's {chunk index: [tensor per field]} (CPU tensors). Returns one tensor
    per field: the chunks of every rank concatenated by chunk index.
    """
    if world.distributed:
        gathered: list = [None] * world.size
        dist.all_gather_object(gathered, chunks)
        chunks = {k: v for part in gathered for k, v in part.items()}
    order = sorted(chunks)
    fields = len(chunks[order[0]])
    return [torch.cat([chunks[k][i] for k in order]) for i in range(fields)]


def all_mean(value: float, world: World) -> float:
    """The mean of a float over ranks (for logs)."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world.size


def wrap_ddp(module: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` on several ranks; the module itself when alone."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
