"""Monte-Carlo SURE: an estimate of the mean squared error of an estimate, without the clean image.

For ``y = x + n`` with white Gaussian noise of standard deviation ``sigma`` and an estimate
``f(y)`` (here: the dynamic's state after ``k`` steps, a function of ``y`` through both the
start ``x_0 = y`` and the input injection), Stein's unbiased risk estimate is

    SURE = |y - f(y)|^2 / N - sigma^2 + 2 sigma^2 div f(y) / N,

and the divergence is estimated with one random probe ``b`` (Ramani, Blu, Unser 2008):
``div f(y) ~ b . (f(y + eps b) - f(y)) / eps``. Following a second trajectory started from
``y + eps b`` therefore gives the risk of every step of the first at twice the cost.

It is only valid for white Gaussian noise (the ``gaussian`` family). FBP noise in CT is
correlated and magnitude MR noise is Rician, and on them SURE stopped 2-10x too early in our
measurements (``docs/architecture.md``).
"""

from __future__ import annotations

import math

import torch

PROBE_SEED = 0
EPS_OVER_SIGMA = 1e-3
WHITE_NOISE_FAMILIES = ("gaussian",)


def scaled_step(k: int, scale: float, cap: int) -> int:
    """``round(scale k)`` (halves up), at most ``cap``: where a calibrated SURE stop lands."""
    return min(cap, int(math.floor(scale * k + 0.5)))


def probe(y: torch.Tensor, seed: int = PROBE_SEED) -> torch.Tensor:
    """A standard normal probe shaped like ``y`` (B, 1, H, W), the same for every image of the
    batch position-independently (so a batch of 8 gives what 8 batches of 1 give)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    one = torch.randn(y.shape[1:], generator=g, dtype=torch.float32)
    return one.to(y.device, y.dtype).expand_as(y).contiguous(memory_format=torch.channels_last)


def probe_step(sigma: torch.Tensor) -> torch.Tensor:
    """The probe's scale ``eps`` (B,) for noise levels ``sigma`` (B,)."""
    return (EPS_OVER_SIGMA * sigma).clamp_min(1e-6)


def sure_risk(y: torch.Tensor, x: torch.Tensor, x_probed: torch.Tensor, b: torch.Tensor, eps: torch.Tensor,
              sigma: torch.Tensor) -> torch.Tensor:
    """SURE per pixel (B,) of the estimate ``x`` of ``y``.

    y, x, x_probed, b : (B, 1, H, W); ``x_probed`` is the same estimate computed from ``y + eps b``.
    eps, sigma : (B,).
    """
    n = y[0].numel()
    fidelity = (y - x).double().pow(2).flatten(1).sum(1)
    divergence = (b * (x_probed - x)).double().flatten(1).sum(1) / eps.double()
    s2 = sigma.double().pow(2)
    return ((fidelity + 2 * s2 * divergence) / n - s2).float()
