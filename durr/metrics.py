"""PSNR and SSIM exactly as PROTOCOL.md section 4, scikit-image style.

Plain functions on 2D images; ``data_range`` is explicit; shapes are checked first; results
are Python floats computed in float64. ``score`` applies the per-modality windows:

======  =====================  ==================================================
CT      primary                HU clipped to [-1000, 1000], data range 2000
CT      soft-tissue            HU clipped to [-160, 240], data range 400
MR      primary                divided by r (99.5th percentile of the reference),
                               clipped to [0, 1], data range 1
OT      primary                clipped to [0, 1], data range 1
======  =====================  ==================================================

SSIM is computed after mapping the clipped window linearly onto [0, 1] (data range 1); PSNR
is the same on the window or on its [0, 1] map.

Examples
--------
>>> ref = np.zeros((32, 32)); x = ref + 0.01
>>> round(psnr(x, ref, data_range=1.0), 6)
40.0
>>> round(score(x, ref, "OT")["psnr"], 6)
40.0
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["psnr", "ssim", "score", "metric_window", "WINDOWS"]

# (modality, window) -> fixed (lo, hi); MR's upper bound depends on the reference
WINDOWS: dict[tuple[str, str], tuple[float, float] | None] = {
    ("CT", "primary"): (-1000.0, 1000.0),
    ("CT", "soft-tissue"): (-160.0, 240.0),
    ("MR", "primary"): None,
    ("OT", "primary"): (0.0, 1.0),
}

_SIGMA = 1.5
_TRUNCATE = 3.5          # scikit-image's: window radius int(3.5 * 1.5 + 0.5) = 5, i.e. 11 x 11
_K1, _K2 = 0.01, 0.03


def _as_2d(image, name: str) -> np.ndarray:
    """A numpy or torch 2D image (leading singleton axes allowed) as float64 (H, W)."""
    if hasattr(image, "detach"):                      # torch.Tensor without importing torch
        image = image.detach().cpu().numpy()
    array = np.asarray(image, dtype=np.float64)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2D image (H, W), got shape {np.shape(image)}")
    return array


def _pair(x, ref) -> tuple[np.ndarray, np.ndarray]:
    x, ref = _as_2d(x, "x"), _as_2d(ref, "ref")
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch: x {x.shape} vs ref {ref.shape}")
    return x, ref


def _check_range(data_range) -> float:
    data_range = float(data_range)
    if not data_range > 0 or not math.isfinite(data_range):
        raise ValueError(f"data_range must be a finite number > 0, got {data_range}")
    return data_range


def psnr(x, ref, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / mean((x - ref)^2))``.

    Parameters
    ----------
    x, ref : 2D arrays (H, W) of the same shape (numpy or torch).
    data_range : the range of the reference's values, > 0 (never guessed).

    Returns
    -------
    float; ``inf`` when the images are equal.
    """
    x, ref = _pair(x, ref)
    data_range = _check_range(data_range)
    mse = float(np.mean((x - ref) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def ssim(x, ref, data_range: float) -> float:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window.

    Local statistics use a Gaussian of sigma 1.5 truncated at 3.5 sigma (11 x 11, reflecting
    at the borders) and population (co)variances::

        S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
        C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = data_range,

    averaged over the image less a 5-pixel border. This is scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

    Parameters
    ----------
    x, ref : 2D arrays (H, W) of the same shape, at least 11 x 11.
    data_range : > 0.

    Returns
    -------
    float in [-1, 1].

    References
    ----------
    Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13(4), 2004.
    """
    x, ref = _pair(x, ref)
    data_range = _check_range(data_range)
    radius = int(_TRUNCATE * _SIGMA + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"ssim: images must be at least {2 * radius + 1} x {2 * radius + 1}, got {x.shape}")

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=_SIGMA, truncate=_TRUNCATE, mode="reflect")

    mu_x, mu_y = blur(x), blur(ref)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(ref * ref) - mu_y**2
    cov = blur(x * ref) - mu_x * mu_y
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(s[radius:-radius, radius:-radius].mean(dtype=np.float64))


def metric_window(modality: str, reference, window: str = "primary") -> tuple[float, float]:
    """The value range ``(lo, hi)`` that ``score`` clips to, in the image's own unit.

    Parameters
    ----------
    modality : ``"CT"``, ``"MR"`` or ``"OT"``.
    reference : the reference image (only MR uses it: ``hi`` = its 99.5th percentile).
    window : ``"primary"``, or ``"soft-tissue"`` for CT.

    Raises
    ------
    ValueError for an unknown modality/window, or an MR reference whose percentile is not > 0.
    """
    key = (str(modality).upper(), window)
    if key not in WINDOWS:
        valid = ", ".join(f"{m}/{w}" for m, w in WINDOWS)
        raise ValueError(f"unknown modality/window {modality!r}/{window!r}; valid: {valid}")
    fixed = WINDOWS[key]
    if fixed is not None:
        return fixed
    r = float(np.percentile(_as_2d(reference, "reference"), 99.5))
    if not r > 0:
        raise ValueError(f"MR reference has 99.5th percentile {r}; cannot normalise")
    return (0.0, r)


def score(restored, reference, modality: str, window: str = "primary") -> dict[str, float]:
    """PSNR and SSIM of ``restored`` against ``reference`` on the protocol's window.

    Both images are clipped to ``metric_window(modality, reference, window)`` and mapped
    linearly onto [0, 1]; PSNR and SSIM are then computed with data range 1 (for CT this PSNR
    equals the PSNR on the clipped HU with data range 2000, or 400 for soft tissue).

    Parameters
    ----------
    restored, reference : 2D images (H, W) in the modality's unit (CT: HU; MR: scanner units;
        OT: [0, 1]), numpy or torch.
    modality : ``"CT"``, ``"MR"`` or ``"OT"``.
    window : ``"primary"`` or (CT) ``"soft-tissue"``.

    Returns
    -------
    {"psnr": float dB, "ssim": float}
    """
    restored, reference = _pair(restored, reference)
    lo, hi = metric_window(modality, reference, window)

    def to_unit(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, lo, hi) - lo) / (hi - lo)

    x, ref = to_unit(restored), to_unit(reference)
    return {"psnr": psnr(x, ref, 1.0), "ssim": ssim(x, ref, 1.0)}
