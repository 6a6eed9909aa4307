"""Pre-degraded training slices.

Degrading whole slices per batch costs far more than the training step on small patches
(full-slice percentiles for MR, FBP for CT), so each training slice is degraded a few times
once, at levels spread over the seen range, and batches are random crops of that bank.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from durr.data.sampling import sample_seen_levels
from durr.train.checkpoint import load_checkpoint, save_checkpoint


def build_bank(images: list[np.ndarray], spacings: list[float], degradation, per_slice: int,
                  seed: int, cache: Path | None = None, progress: bool = True,
                  device: torch.device | str = "cpu"):
    """``per_slice`` degraded realisations of each slice, at levels uniform in severity over the seen range.

    Returns (degraded list of (H, W) CPU tensors, reference list, levels (N,) float64), cached
    to ``cache`` (a .pt file read back with weights_only) when given. ``device``: where the
    degradation runs (CT's FBP is far faster on CUDA). The random draws always come from one
    CPU generator, so a bank depends on the device only through float rounding; if the
    degradation fails on CUDA, the bank is built on the CPU with a warning.
    """
    if cache is not None and Path(cache).exists():
        state = load_checkpoint(cache)
        return list(state["degraded"]), list(state["reference"]), state["levels"]
    device = torch.device(device)
    if device.type != "cpu":
        try:
            return _build_and_cache(images, spacings, degradation, per_slice, seed, cache, progress, device)
        except RuntimeError as err:
            warnings.warn(f"degradation bank: {degradation.name} failed on {device} ({err}); building it on the CPU",
                          stacklevel=2)
    return _build_and_cache(images, spacings, degradation, per_slice, seed, cache, progress, torch.device("cpu"))


def _build_and_cache(images, spacings, degradation, per_slice, seed, cache, progress, device: torch.device):
    generator = torch.Generator().manual_seed(seed)
    degraded, reference, levels = [], [], []
    for image, spacing in tqdm(list(zip(images, spacings)), desc=f"degradation bank ({degradation.name}, {device})",
                               unit="slice", disable=not progress):
        lv = sample_seen_levels(degradation, degradation.seen, per_slice, generator)
        clean = torch.from_numpy(image)[None, None].expand(per_slice, 1, *image.shape).contiguous().to(device)
        out = degradation(clean, lv.float(), generator=generator, spacing_mm=spacing)
        degraded += list(out.noisy[:, 0].float().cpu())
        reference += list(out.reference[:, 0].float().cpu())
        levels.append(lv)
    levels = torch.cat(levels)
    if cache is not None:
        save_checkpoint(cache, {"degraded": degraded, "reference": reference, "levels": levels})
    return degraded, reference, levels
