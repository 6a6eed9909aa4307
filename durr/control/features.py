"""Scale-free statistics of the restoration state, the stopping policy's view of it.

The policy must stop well on anatomy and levels it never saw, so it does not look at the
image itself but at how much degradation is left: the noise level of the input, how far the
estimate has moved from the input, how large the last update was, and how much
high-frequency energy the estimate still carries, all relative to the input's noise; and how
white the removed part y - x_n still is (once the dynamic removes anatomy, not noise, that
part gains correlated structure).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import torch

FEATURE_NAMES = (
    "log_sigma_input",       # log noise level of y (working domain)
    "moved_over_sigma",      # rms(x_n - y) / sigma_y
    "update_over_sigma",     # rms(x_n - x_{n-1}) / sigma_y
    "residual_noise_ratio",  # sigma(x_n) / sigma_y
    "log_residual_noise",    # log sigma(x_n)
    "step_over_ten",         # n / 10
    "residual_lag1",         # lag-1 autocorrelation of r = y - x_n
    "residual_structure",    # rms(r) / sigma(r)
)
NUM_FEATURES = len(FEATURE_NAMES)
_MAD_TO_SIGMA = 1.0 / 0.6745
_EPS = 1e-4
# Below this noise level (working domain: 0.1% of the MR scale, 1 HU on CT, 1/4 of an 8-bit grey
# level) an input has no measurable noise: the features, which divide by it, would leave the
# range the policy was trained on (every seen level is at least 10x noisier), so the policy
# leaves such an input as it is.
NOISE_FREE_SIGMA = 1e-3


def noise_free(sigma_y: torch.Tensor) -> torch.Tensor:
    """(B,) noise levels of inputs -> (B,) bool: no measurable noise (see ``NOISE_FREE_SIGMA``)."""
    return sigma_y < NOISE_FREE_SIGMA


def _lower_median(rows: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B,) the lower median of each row, as ``torch.median`` defines it. On the CPU
    numpy's selection is about 10x faster than torch's (1 ms -> 0.1 ms for a 512x512 slice's
    Haar band, a few percent of a restoration step); the value is the same element."""
    if rows.device.type != "cpu" or rows.requires_grad or rows.dtype not in (torch.float32, torch.float64):
        return rows.median(dim=1).values
    k = (rows.shape[1] - 1) // 2
    return torch.from_numpy(np.partition(rows.contiguous().numpy(), k, axis=1)[:, k].copy())


def noise_sigma(image: torch.Tensor) -> torch.Tensor:
    """Robust noise level per image from the finest diagonal Haar detail (Donoho's MAD).

    image (B, 1, H, W) -> sigma (B,). Crops to even size.
    """
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    x = image[..., :h, :w]
    diag = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return _lower_median(diag.flatten(1).abs()) * _MAD_TO_SIGMA


def _rms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).mean(dim=1).sqrt()


def update_over_sigma(x_next: torch.Tensor, x: torch.Tensor, sigma_y: torch.Tensor) -> torch.Tensor:
    """rms(x_next - x) / sigma_y per image: (B, 1, H, W) x2, (B,) -> (B,) (the feature of that name)."""
    return _rms(x_next - x) / sigma_y.clamp_min(_EPS)


def residual_whiteness(x: torch.Tensor, y: torch.Tensor, sigma_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How noise-like the part the dynamic has removed, r = y - x_n, still is.

    x, y (B, 1, H, W), sigma_y (B,) -> (lag-1 autocorrelation of r over both axes, rms(r) / sigma(r)),
    each (B,). Removed noise is nearly white, so both stay low while the dynamic removes noise;
    once it starts removing anatomy, r gains smooth, correlated structure and both rise, at any
    noise level. Before the first step (r = 0) they are 0 and 1.
    """
    r = (y - x).float()
    energy = r.pow(2).flatten(1).sum(1)
    rms = (energy / r[0].numel()).sqrt()
    lag = ((r[..., :, 1:] * r[..., :, :-1]).flatten(1).sum(1)
           + (r[..., 1:, :] * r[..., :-1, :]).flatten(1).sum(1)) / (2 * energy).clamp_min(1e-30)
    floor = 1e-6 * sigma_y.clamp_min(_EPS)
    structure = rms / noise_sigma(r).clamp_min(floor)
    moved = rms > floor
    return torch.where(moved, lag, torch.zeros_like(lag)), torch.where(moved, structure, torch.ones_like(structure))


def state_features(x: torch.Tensor, x_prev: torch.Tensor, y: torch.Tensor, step: int,
                   sigma_y: torch.Tensor | None = None, needed: Collection[str] | None = None) -> torch.Tensor:
    """Features of the state at step ``step``.

    x, x_prev, y : (B, 1, H, W) current estimate, previous estimate (= x at step 0), input.
    sigma_y : (B,) noise level of y, if already known (it does not change along a rollout).
    needed : names to compute (default all); the others are NaN. A rollout computes only what
        its policy and stopping rule read: each Haar-MAD noise level is a median over a quarter
        of the image, a few percent of a step's time.
    Returns (B, NUM_FEATURES), float32.
    """
    needed = set(FEATURE_NAMES if needed is None else needed)
    sigma_y = noise_sigma(y) if sigma_y is None else sigma_y
    s = sigma_y.clamp_min(_EPS)
    nan = torch.full_like(s, float("nan"))
    sigma_x = noise_sigma(x) if {"residual_noise_ratio", "log_residual_noise"} & needed else nan
    lag, structure = residual_whiteness(x, y, s) if {"residual_lag1", "residual_structure"} & needed else (nan, nan)
    feats = {
        "log_sigma_input": lambda: torch.log(s),
        "moved_over_sigma": lambda: _rms(x - y) / s,
        "update_over_sigma": lambda: update_over_sigma(x, x_prev, sigma_y),
        "residual_noise_ratio": lambda: sigma_x / s,
        "log_residual_noise": lambda: torch.log(sigma_x.clamp_min(_EPS)),
        "step_over_ten": lambda: torch.full_like(s, step / 10.0),
        "residual_lag1": lambda: lag,
        "residual_structure": lambda: structure,
    }
    return torch.stack([feats[name]() if name in needed else nan for name in FEATURE_NAMES], dim=1).float()


def trajectory_features(xs: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Features of every state of a rollout: xs = [x_0 = y, x_1, ...], each (B, 1, H, W) -> (B, T+1, F)."""
    sigma_y = noise_sigma(y)
    return torch.stack([state_features(x, xs[max(n - 1, 0)], y, n, sigma_y) for n, x in enumerate(xs)], dim=1)
