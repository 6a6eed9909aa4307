"""Restore whole scans: slices in batches through the rollout, back to physical units."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from durr.control.restorer import DURR
from durr.control.sure import WHITE_NOISE_FAMILIES
from durr.io.scan import Scan
from durr.train.device import autocast, pick_device


@dataclass
class RestoreInfo:
    """What happened, per slice: steps (Z,), stop probabilities (Z, T+1) in policy mode."""

    steps: np.ndarray
    seconds: float
    stop_prob: np.ndarray | None = None
    trajectory: np.ndarray | None = None  # (T+1, Z, H, W) physical units, when recorded
    slice_axis: int = 0
    extra: dict = field(default_factory=dict)
    level_scale: np.ndarray | None = None  # (Z,) factor each slice ran at (durr.control.level_scale), if any


def prepare(model: DURR, device: str | torch.device = "auto") -> tuple[DURR, torch.device]:
    """Move a model to its device in channels-last layout (2-5x faster convolutions on CPU)."""
    dev = pick_device(str(device)) if not isinstance(device, torch.device) else device
    return model.to(dev).to(memory_format=torch.channels_last).eval(), dev


@torch.no_grad()
def restore_slices(model: DURR, slices: np.ndarray, mode: str = "policy", steps: int | None = None,
                   max_steps: int | None = None, batch_size: int = 8, device: str | torch.device = "auto",
                   record: bool = False, progress: Callable[[int], None] | None = None):
    """Restore a stack of slices.

    slices : (Z, H, W) float32 in physical units (HU for CT, scanner units for MR).
    mode : "policy", "fixed" (with ``steps``) or "sure" (white Gaussian noise only). The oracle needs the clean image: see
        ``durr.bench``.
    progress : called with the number of slices finished after each batch.
    Returns restored (Z, H, W) float32 and a ``RestoreInfo``.
    """
    if slices.ndim != 3:
        raise ValueError(f"slices must be (Z, H, W), got shape {slices.shape}")
    if mode == "sure" and model.config.family not in WHITE_NOISE_FAMILIES:
        raise ValueError(f"stopping by SURE assumes white Gaussian noise (families {', '.join(WHITE_NOISE_FAMILIES)}); "
                         f"this model is for {model.config.family}: use the policy or a fixed step count")
    model, dev = prepare(model, device)
    out = np.empty_like(slices, dtype=np.float32)
    all_steps, all_probs, trajectory, scales = [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, slices.shape[0], batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(slices[start:start + batch_size], dtype=np.float32))
        y = batch[:, None].to(dev).contiguous(memory_format=torch.channels_last)
        with autocast(dev):
            result = model.restore(y, mode=mode, steps=steps, max_steps=max_steps, record=record)
        out[start:start + batch_size] = result.output[:, 0].float().cpu().numpy()
        all_steps.append(result.steps.cpu().numpy())
        if result.level_scale is not None:
            scales.append(result.level_scale.float().cpu().numpy())
        if result.stop_prob is not None:
            all_probs.append(result.stop_prob.float().cpu().numpy())
        if record:
            trajectory.append(torch.stack(result.trajectory)[:, :, 0].float().cpu().numpy())
        if progress is not None:
            progress(batch.shape[0])
    probs = None
    if all_probs:
        width = max(p.shape[1] for p in all_probs)
        probs = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=np.nan)
                                for p in all_probs])
    traj = None
    if trajectory:
        length = max(t.shape[0] for t in trajectory)
        # batches that stopped earlier hold their final estimate for the remaining steps
        traj = np.concatenate([np.concatenate([t, np.repeat(t[-1:], length - t.shape[0], 0)]) for t in trajectory],
                              axis=1)
    return out, RestoreInfo(np.concatenate(all_steps), time.perf_counter() - t0, probs, traj,
                            level_scale=np.concatenate(scales) if scales else None)


def slice_axis(scan: Scan) -> int:
    """Axis of a volume along which to cut 2D slices.

    The acquisition plane: the axis with the coarsest spacing (thick slices), axis 0 when
    the volume is isotropic (DICOM series and NIfTI as ``durr.io`` presents them).
    """
    if not scan.is_volume or len(scan.spacing) != 3:
        return 0
    spacing = np.asarray(scan.spacing, dtype=float)
    coarsest = int(np.argmax(spacing))
    return coarsest if spacing[coarsest] > 1.2 * np.min(spacing) else 0


def restore_scan(scan: Scan, model: DURR, **kwargs) -> tuple[Scan, RestoreInfo]:
    """Restore a ``Scan`` (slice or volume); returns a new Scan with the same metadata."""
    axis = slice_axis(scan)
    stack = np.moveaxis(scan.slices, axis, 0) if scan.is_volume else scan.slices
    restored, info = restore_slices(model, stack, **kwargs)
    info.slice_axis = axis
    restored = np.moveaxis(restored, 0, axis) if scan.is_volume else restored[0]
    return scan.with_array(restored), info
