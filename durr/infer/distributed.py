"""Which share of a batch this process does, under ``torchrun`` or alone.

``torchrun`` (one node or many) starts one process per rank and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``. Batch restoration needs no gradients to agree, so ranks
only talk twice: rank 0 sends the plan (the sorted list of scans) to all, and at the end
gathers every rank's report rows. Those messages are small Python objects, so the process
group is always gloo (it runs on CPU and beside CUDA alike); the scans themselves never
travel. Alone (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) nothing is initialised.

Examples
--------
>>> world = World.from_env()                       # doctest: +SKIP
>>> with world.session():
...     jobs = world.broadcast(plan(...) if world.rank == 0 else None)
...     mine = jobs[world.rank::world.size]
...     rows = world.gather(do(mine))              # a list of lists on rank 0, None elsewhere
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

# Ranks wait for the slowest at the final gather; scans take minutes, so the usual 30-minute
# collective timeout could fire on a large batch. ``DURR_DIST_TIMEOUT_MIN`` changes it.
DEFAULT_TIMEOUT_MIN = 7 * 24 * 60


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


@dataclass(frozen=True)
class World:
    """This process's place among the ranks: ``rank`` in ``0 .. size - 1``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "World":
        size = _env_int("WORLD_SIZE", 1)
        rank = _env_int("RANK", 0)
        local = _env_int("LOCAL_RANK", rank)
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"RANK={rank} and WORLD_SIZE={size} do not describe a rank")
        return cls(rank, size, local)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, items: list) -> list:
        """Every ``size``-th item starting at ``rank``: each item falls to exactly one rank."""
        return items[self.rank::self.size]

    @contextmanager
    def session(self) -> Iterator["World"]:
        """Initialise a gloo process group when there are several ranks (and none exists yet)."""
        import torch.distributed as dist

        created = False
        if self.distributed and not dist.is_initialized():
            timeout = timedelta(minutes=_env_int("DURR_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN))
            dist.init_process_group("gloo", rank=self.rank, world_size=self.size, timeout=timeout)
            created = True
        try:
            yield self
        finally:
            if created and dist.is_initialized():
                dist.destroy_process_group()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (``obj`` is ignored elsewhere)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list | None:
        """Every rank's ``obj``, in rank order, on rank 0; None on the others."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def device(self, name: str) -> str:
        """The torch device for this rank: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under torchrun."""
        if name in ("auto", "cuda") and self.distributed:
            import torch

            if torch.cuda.is_available():
                index = self.local_rank % torch.cuda.device_count()
                torch.cuda.set_device(index)
                return f"cuda:{index}"
        return name
