"""The work behind the page, as plain functions over ``durr.infer`` (no streamlit here).

* ``find_model`` / ``model_key``: which model folder serves a scan, and a cache key for it;
* ``restore``: a whole scan through ``durr.infer.restore_scan`` (policy stop);
* ``slice_trajectory``: every step of one slice up to the policy's stop;
* ``study``: degrade a clean slice with a family of ``durr.degrade`` at a level, restore it with
  the policy's stop and with the oracle stop, score both with ``durr.metrics``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from durr.control.normalize import robust_scale, to_model
from durr.control.restorer import DURR
from durr.errors import ModelError
from durr.infer import DEFAULT_MODEL_FOR_MODALITY, models_root, resolve_model_dir, restore_scan, restore_slices
from durr.infer.model_io import CONFIG, WEIGHTS
from durr.infer.restore import slice_axis
from durr.io import Scan


# One restoration at a time: the cached models are shared by every session of the server, and
# ``durr.infer`` moves a model to its device and layout in place before each use.
MODEL_LOCK = threading.Lock()

# --------------------------------------------------------------------------- models


def find_model(modality: str, folder: str | None = None) -> Path:
    """The model folder for a scan: ``folder`` if given, else the shipped model of its modality.

    Raises ModelError with a message that says what to do when there is none.
    """
    if folder:
        path = Path(folder).expanduser()
        if not (path / CONFIG).is_file():
            raise ModelError(f"{folder}: not a model folder (no {CONFIG} in it)")
        return path.resolve()
    name = DEFAULT_MODEL_FOR_MODALITY.get(modality)
    if name is None:
        raise ModelError(f"no default model for modality {modality!r}; give a model folder in the sidebar")
    try:
        return resolve_model_dir(name).resolve()
    except ModelError:
        raise ModelError(f"no trained model for {modality}: {models_root() / name} does not exist. Train one "
                         f"(`durr train all --family {name}`), or give a model folder in the sidebar "
                         "(or set DURR_MODELS to a folder of models).") from None


def model_key(folder: Path) -> str:
    """Path plus the weights' modification time and size: changes when the model is retrained."""
    stats = [(folder / n).stat() for n in (WEIGHTS, CONFIG) if (folder / n).exists()]
    return f"{folder}|" + "|".join(f"{s.st_mtime_ns}:{s.st_size}" for s in stats)


def model_device(model: DURR) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------- restoration


@dataclass
class Restoration:
    """A restored scan and what the policy did, per slice along ``axis``.

    steps : (Z,) terminal time per slice; stop_prob : (Z, T+1), NaN after the stop.
    trajectory : (T+1, Z, H, W) in physical units, kept only for a single slice (volumes
        compute it slice by slice on demand, see ``slice_trajectory``).
    """

    restored: Scan
    steps: np.ndarray
    stop_prob: np.ndarray | None
    seconds: float
    axis: int
    trajectory: np.ndarray | None = None
    level_scale: np.ndarray | None = None  # (Z,) factor each slice ran at (below 1: noisier than trained on)


def view_axis(scan: Scan) -> int:
    """The axis slices are cut along, for display and restoration alike (``durr.infer``'s choice)."""
    return slice_axis(scan)


def stack(array: np.ndarray, axis: int) -> np.ndarray:
    """(Z, H, W) view of a slice (Z = 1) or of a volume cut along ``axis``."""
    return array[None] if array.ndim == 2 else np.moveaxis(array, axis, 0)


def restore(scan: Scan, model: DURR) -> Restoration:
    """Restore the whole scan with the policy's stop (trajectory recorded for a single slice)."""
    single = scan.array.ndim == 2
    with MODEL_LOCK:
        restored, info = restore_scan(scan, model, mode="policy", record=single)
    return Restoration(restored, np.asarray(info.steps), info.stop_prob, info.seconds, info.slice_axis,
                       info.trajectory if single else None, info.level_scale)


@dataclass
class Trajectory:
    """Estimates of one slice at steps 0..steps (physical units) and the stop probabilities."""

    frames: np.ndarray        # (steps + 1, H, W)
    steps: int
    stop_prob: np.ndarray | None  # (T+1,)


def slice_trajectory(result: Restoration, scan: Scan, model: DURR, index: int) -> Trajectory:
    """The trajectory of slice ``index`` (along ``result.axis``) up to its stop."""
    if result.trajectory is not None:
        steps = int(result.steps[index])
        frames = result.trajectory[: steps + 1, index]
        probs = None if result.stop_prob is None else result.stop_prob[index]
        return Trajectory(frames, steps, probs)
    image = stack(scan.array, result.axis)[index]
    with MODEL_LOCK:
        _, info = restore_slices(model, image[None], mode="policy", record=True)
    steps = int(info.steps[0])
    probs = None if info.stop_prob is None else info.stop_prob[0]
    return Trajectory(info.trajectory[: steps + 1, 0], steps, probs)


# --------------------------------------------------------------------------- study mode


def families_for(modality: str) -> list[str]:
    """Registered degradation families whose images are in this modality's unit (``.modality``)."""
    from durr.degrade import degradation_names, get_degradation

    return [name for name in degradation_names() if get_degradation(name).modality == modality]


def level_choices(seen: tuple[float, float], unseen, points: int = 13, grid=None) -> list[float]:
    """Levels offered on the study slider: a grid over the seen range plus every unseen level.

    ``unseen`` levels lie beyond the seen range (above it, or below it for CT dose), so the
    slider reaches past what the model was trained on. ``grid``: the family's own levels
    (``Degradation.level_grid``, e.g. view counts), used instead of an even grid.
    """
    lo, hi = float(seen[0]), float(seen[1])
    if grid:
        return sorted({float(v) for v in grid} | {float(v) for v in unseen})
    grid = np.linspace(lo, hi, points)
    return sorted({float(f"{v:.4g}") for v in grid} | {float(v) for v in unseen})


def is_seen(level: float, seen: tuple[float, float]) -> bool:
    return float(seen[0]) - 1e-9 <= level <= float(seen[1]) + 1e-9


@dataclass
class Study:
    """A clean slice degraded at ``level`` and restored two ways, scored against the reference.

    reference : what the metrics compare with (the clean slice; for ct-lowdose the noise-free
        FBP, as PROTOCOL.md section 2 says).
    scores : {"degraded" | "policy" | "oracle": {"psnr": dB, "ssim": ...}}.
    """

    family: str
    level: float
    seen: bool
    degraded: np.ndarray
    reference: np.ndarray
    policy: np.ndarray
    oracle: np.ndarray
    policy_steps: int
    oracle_steps: int
    stop_prob: np.ndarray | None
    scores: dict
    seconds: float


def study(clean: np.ndarray, modality: str, spacing_mm: float, model: DURR, family: str, level: float,
          seed: int = 0) -> Study:
    """Degrade ``clean`` (H, W, physical units), restore with the policy's and the oracle's stop, score.

    The oracle runs the same model to its step cap and keeps the step closest (in squared error,
    working domain) to the reference: an upper bound on what any stopping rule can reach.
    """
    from durr.degrade import get_degradation
    from durr.metrics import score

    deg = get_degradation(family)
    noisy, reference = deg.apply_numpy(np.asarray(clean, dtype=np.float32), float(level), int(seed),
                                       spacing_mm=float(spacing_mm))
    noisy = np.asarray(noisy, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)

    t0 = time.perf_counter()
    with MODEL_LOCK:
        restored, info = restore_slices(model, noisy[None], mode="policy")
        device = model_device(model)
        y = torch.from_numpy(noisy)[None, None].to(device)
        target = to_model(torch.from_numpy(reference)[None, None].to(device), robust_scale(y, model.config.modality))

        def closeness(x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) working domain -> (B,), higher better
            return -(x.float() - target).pow(2).flatten(1).mean(dim=1)

        with torch.no_grad():
            oracle = model.restore(y, mode="oracle", score=closeness)
    scores = {"degraded": score(noisy, reference, modality),
              "policy": score(restored[0], reference, modality),
              "oracle": score(oracle.output[0, 0].float().cpu().numpy(), reference, modality)}
    scores = {k: {m: float(v) for m, v in s.items()} for k, s in scores.items()}
    return Study(family, float(level), is_seen(level, deg.seen), noisy, reference, restored[0],
                 oracle.output[0, 0].float().cpu().numpy(), int(info.steps[0]), int(oracle.steps[0]),
                 None if info.stop_prob is None else info.stop_prob[0], scores, time.perf_counter() - t0)
