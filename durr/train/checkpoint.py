"""Training checkpoints: written atomically, read back with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from durr.errors import ModelError


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (tensors, numbers, strings, dicts) so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated or not a checkpoint at all
        raise ModelError(f"{path}: not a readable DURR checkpoint ({type(err).__name__}: {err})") from None
