"""Scale-free statistics of the restoration state, the stopping policy's view of it.

The policy must stop well on anatomy and levels it never saw, so it does not look at the
image itself but at how much degradation is left: the noise level of the input, how far the
estimate has moved from the input, how large the last update was, and how much
high-frequency energy the estimate still carries, all relative to the input's noise.
"""

from __future__ import annotations

import torch

FEATURE_NAMES = (
    "log_sigma_input",       # log noise level of y (working domain)
    "moved_over_sigma",      # rms(x_n - y) / sigma_y
    "update_over_sigma",     # rms(x_n - x_{n-1}) / sigma_y
    "residual_noise_ratio",  # sigma(x_n) / sigma_y
    "log_residual_noise",    # log sigma(x_n)
    "step_over_ten",         # n / 10
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


def noise_sigma(image: torch.Tensor) -> torch.Tensor:
    """Robust noise level per image from the finest diagonal Haar detail (Donoho's MAD).

    image (B, 1, H, W) -> sigma (B,). Crops to even size.
    """
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    x = image[..., :h, :w]
    diag = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return diag.flatten(1).abs().median(dim=1).values * _MAD_TO_SIGMA


def _rms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).pow(2).mean(dim=1).sqrt()


def update_over_sigma(x_next: torch.Tensor, x: torch.Tensor, sigma_y: torch.Tensor) -> torch.Tensor:
    """rms(x_next - x) / sigma_y per image: (B, 1, H, W) x2, (B,) -> (B,) (the feature of that name)."""
    return _rms(x_next - x) / sigma_y.clamp_min(_EPS)


def state_features(x: torch.Tensor, x_prev: torch.Tensor, y: torch.Tensor, step: int,
                   sigma_y: torch.Tensor | None = None) -> torch.Tensor:
    """Features of the state at step ``step``.

    x, x_prev, y : (B, 1, H, W) current estimate, previous estimate (= x at step 0), input.
    sigma_y : (B,) noise level of y, if already known (it does not change along a rollout).
    Returns (B, NUM_FEATURES), float32.
    """
    sigma_y = noise_sigma(y) if sigma_y is None else sigma_y
    s = sigma_y.clamp_min(_EPS)
    sigma_x = noise_sigma(x)
    feats = [
        torch.log(s),
        _rms(x - y) / s,
        update_over_sigma(x, x_prev, sigma_y),
        sigma_x / s,
        torch.log(sigma_x.clamp_min(_EPS)),
        torch.full_like(s, step / 10.0),
    ]
    return torch.stack(feats, dim=1).float()


def trajectory_features(xs: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Features of every state of a rollout: xs = [x_0 = y, x_1, ...], each (B, 1, H, W) -> (B, T+1, F)."""
    sigma_y = noise_sigma(y)
    return torch.stack([state_features(x, xs[max(n - 1, 0)], y, n, sigma_y) for n, x in enumerate(xs)], dim=1)
