"""A user's own folder of clean scans as training data: read, checked, split by volume.

Every scan ``durr.io.find_scans`` finds (DICOM series, multi-frame DICOM, NIfTI, PNG, TIFF,
NPY) is one *volume*; the held-out split takes whole volumes, never slices of a volume that
also trains. A file that cannot be read, or is of another modality, is skipped with a warning
naming it, and the rest goes on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from durr.data.corpus import Slices
from durr.errors import ScanError


class SkippedScanWarning(UserWarning):
    """A scan of the user's folder was left out of training (the message says which and why)."""


@dataclass
class UserData:
    """train / heldout slices (physical units) and what was read, for the model card."""

    train: Slices
    heldout: Slices
    folder: str
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (relative path, reason)

    def summary(self) -> dict:
        def volumes(s: Slices) -> list[str]:
            return sorted(set(s.source_ids))

        return {"folder": self.folder,
                "train": {"volumes": volumes(self.train), "slices": len(self.train.images)},
                "heldout": {"volumes": volumes(self.heldout), "slices": len(self.heldout.images)},
                "skipped": [{"scan": rel, "reason": why} for rel, why in self.skipped]}


def _informative(image: np.ndarray) -> bool:
    """Not blank: some structure beyond a constant (an all-air CT slice, an empty MR slice)."""
    finite = np.isfinite(image).all()
    return bool(finite and float(image.std()) > 1e-3 * max(float(np.abs(image).max()), 1e-6))


def _pick(n: int, limit: int) -> list[int]:
    """At most ``limit`` indices of 0..n-1, evenly spread."""
    if n <= limit:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, limit)})


def read_volumes(folder: str | Path, modality: str, max_slices_per_volume: int = 16,
                 min_size: int = 32) -> tuple[dict[str, tuple[list[np.ndarray], float]], list[tuple[str, str]]]:
    """{relative path: (slices (H, W) float32, row spacing mm)} and the skipped scans.

    modality : the model's ("CT", "MR" or "OT"); a DICOM of another modality is skipped, files
    without one (NIfTI, images) are taken as this modality.
    """
    from durr.io import find_scans

    volumes: dict[str, tuple[list[np.ndarray], float]] = {}
    skipped: list[tuple[str, str]] = []

    def skip(rel: str, why: str) -> None:
        skipped.append((rel, why))
        warnings.warn(f"{Path(folder) / rel}: skipped ({why})", SkippedScanWarning, stacklevel=3)

    for src in find_scans(folder):
        rel = str(src.rel)
        if not src.ok:
            skip(rel, src.problem)
            continue
        try:
            scan = src.load(modality=None if src.format in ("dicom", "dicom-series") else modality)
        except ScanError as err:
            skip(rel, err.problem)
            continue
        if modality == "CT" and src.format in ("png", "tiff"):
            skip(rel, "an image file carries no Hounsfield units; give CT as DICOM or NIfTI")
            continue
        if scan.modality != modality:
            skip(rel, f"modality {scan.modality}, the model is {modality}")
            continue
        stack = scan.slices
        if min(stack.shape[-2:]) < min_size:
            skip(rel, f"slices of {stack.shape[-2]}x{stack.shape[-1]} are under {min_size} pixels")
            continue
        kept = [np.ascontiguousarray(stack[i], dtype=np.float32) for i in range(stack.shape[0])]
        kept = [s for s in kept if _informative(s)]
        if not kept:
            skip(rel, "no slice with image content (blank or non-finite)")
            continue
        volumes[rel] = ([kept[i] for i in _pick(len(kept), max_slices_per_volume)], float(scan.spacing[-2]))
    return volumes, skipped


def split_volumes(names: list[str], heldout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, heldout) volume names: a seeded shuffle, at least one volume on each side."""
    names = sorted(names)
    if len(names) < 2:
        raise ValueError(f"training needs at least 2 readable scans (one to train on, one held out); "
                         f"found {len(names)}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {heldout_fraction}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = min(max(1, round(heldout_fraction * len(names))), len(names) - 1)
    held = sorted(names[i] for i in order[:n_held])
    return [n for n in names if n not in held], held


def read_user_folder(folder: str | Path, modality: str, heldout_fraction: float = 0.2, seed: int = 0,
                     max_slices_per_volume: int = 16) -> UserData:
    """The user's folder as train / held-out slices, split by volume.

    Raises
    ------
    ScanError if the folder does not exist; ValueError if fewer than two scans are readable.
    """
    volumes, skipped = read_volumes(folder, modality, max_slices_per_volume)
    train_names, held_names = split_volumes(list(volumes), heldout_fraction, seed)

    def slices(names: list[str]) -> Slices:
        images, spacings, ids = [], [], []
        for name in names:
            stack, spacing = volumes[name]
            images += stack
            spacings += [spacing] * len(stack)
            ids += [name] * len(stack)
        return Slices(images, spacings, ids)

    return UserData(slices(train_names), slices(held_names), str(folder), skipped)
