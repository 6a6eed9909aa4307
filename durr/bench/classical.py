"""Classical denoisers of the benchmark, run in each modality's metric window.

Every classical method maps the degraded image (physical units) linearly to a window where
the protocol's metric range is [0, 1], denoises there and maps back:

- CT: ``u = (HU + 1000) / 2000`` (the metric range [-1000, 1000] HU becomes [0, 1]). The map
  is linear and nothing is clipped before denoising (bone above 1000 HU and noise below
  -1000 HU stay as they are); the metric clips afterwards.
- MR: ``u = y / r``, ``r`` the robust scale of the *degraded* slice (its 99.5th percentile,
  ``durr.control.normalize.robust_scale``, the same the learned models use; the clean image's
  percentile is not available to a method).
- other: as is ([0, 1]).

So a smoothing weight or a noise level means the same thing for every modality: a fraction
of the metric range. ``estimate_sigma`` (Donoho's wavelet MAD) assumes white noise; the noise
of a filtered back-projection is correlated, so on CT it underestimates the noise level.
This is why the noise-adaptive TV (and BM3D) scale the estimate by a constant tuned once at
a seen level.

References: Chambolle (2004) TV; Buades, Coll & Morel (2005) non-local means; Chang, Yu &
Vetterli (2000) BayesShrink; Dabov et al. (2007) BM3D (``bm3d`` package, Makinen et al. 2020).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from durr.control.normalize import robust_scale

__all__ = ["Window", "to_window", "estimate_noise", "nlm", "tv", "wavelet", "bm3d_denoise",
           "bm3d_missing_reason", "grid_search", "TV_WEIGHT_GRID", "TV_C_GRID", "BM3D_C_GRID"]

CT_LOW, CT_HIGH = -1000.0, 1000.0

# Coarse log grids searched at the tuning level, refined once around the best (``grid_search``).
TV_WEIGHT_GRID = tuple(float(w) for w in np.geomspace(0.005, 0.64, 8))   # fraction of the range
TV_C_GRID = tuple(float(c) for c in np.geomspace(0.25, 16.0, 7))         # weight / sigma_hat
BM3D_C_GRID = (1.0, 1.5, 2.25, 3.4)                                        # sigma_psd / sigma_hat


@dataclass(frozen=True)
class Window:
    """A linear map ``u = (y - offset) / scale`` from physical units to the metric window."""

    offset: float
    scale: float

    def forward(self, image: np.ndarray) -> np.ndarray:
        return ((image - self.offset) / self.scale).astype(np.float64)

    def inverse(self, u: np.ndarray) -> np.ndarray:
        return (u * self.scale + self.offset).astype(np.float32)


def to_window(degraded: np.ndarray, modality: str) -> Window:
    """The window of a degraded (H, W) image in physical units (see the module notes)."""
    if modality == "CT":
        return Window(CT_LOW, CT_HIGH - CT_LOW)
    if modality == "MR":
        scale = robust_scale(torch.from_numpy(np.ascontiguousarray(degraded, dtype=np.float32))[None, None], "MR")
        return Window(0.0, float(scale.reshape(())))
    return Window(0.0, 1.0)


def estimate_noise(u: np.ndarray) -> float:
    """scikit-image's ``estimate_sigma`` (wavelet MAD, white-noise assumption), floored."""
    from skimage.restoration import estimate_sigma

    return max(float(estimate_sigma(u)), 1e-6)


def nlm(u: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means with scikit-image's documented settings for a known sigma.

    ``h = 0.8 sigma``, 5x5 patches, 13x13 search window, ``fast_mode`` (uniform patch
    weights; about 7x faster than the Gaussian-weighted mode on a 512x512 slice).
    """
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(u, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)


def tv(u: np.ndarray, weight: float) -> np.ndarray:
    """Chambolle's TV denoising with the given weight (in units of the window)."""
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(u, weight=weight)


def wavelet(u: np.ndarray) -> np.ndarray:
    """BayesShrink wavelet soft thresholding; its noise level is estimated inside."""
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(u, method="BayesShrink", mode="soft", rescale_sigma=True)


def bm3d_missing_reason() -> str | None:
    """None when the optional ``bm3d`` package imports, else why it is not available."""
    try:
        importlib.import_module("bm3d")
    except ImportError:
        return "pip install bm3d (benchmark-only extra, non-commercial licence)"
    return None


def bm3d_denoise(u: np.ndarray, sigma_psd: float) -> np.ndarray:
    """BM3D, the authors' normal profile ("np", both stages), white noise of std ``sigma_psd``.

    It runs on as many threads as torch (``torch.get_num_threads()``), so the thread count
    the table states holds for every method; with one thread it is also bit-reproducible
    (the package warns that several threads may change the last digits between runs).
    """
    bm3d = importlib.import_module("bm3d")
    profile = bm3d.BM3DProfile()
    profile.num_threads = max(1, torch.get_num_threads())
    return np.asarray(bm3d.bm3d(u, sigma_psd=sigma_psd, profile=profile), dtype=np.float64)


def grid_search(objective: Callable[[float], float], grid: Sequence[float], refine: int = 2) -> tuple[float, dict]:
    """Maximise ``objective`` over a log grid, then over ``refine`` points each side of the best.

    The refinement places geometric midpoints between the best value and its neighbours.
    Returns the best value and every value tried with its objective (for the summary).
    """
    tried: dict[float, float] = {}

    def evaluate(values):
        for v in values:
            v = float(f"{v:.4g}")
            if v not in tried:
                tried[v] = float(objective(v))

    evaluate(grid)
    grid = sorted(grid)
    best = max(tried, key=tried.get)
    i = min(range(len(grid)), key=lambda k: abs(grid[k] - best))
    lo = grid[i - 1] if i > 0 else grid[0] / (grid[1] / grid[0])
    hi = grid[i + 1] if i + 1 < len(grid) else grid[-1] * (grid[-1] / grid[-2])
    fractions = np.linspace(0, 1, refine + 2)[1:-1]
    evaluate([best * (lo / best) ** f for f in fractions] + [best * (hi / best) ** f for f in fractions])
    best = max(tried, key=tried.get)
    return best, {f"{k:g}": round(v, 4) for k, v in sorted(tried.items())}
