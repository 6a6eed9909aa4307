"""The step floor: a minimum number of steps predicted from the input's noise level.

On CT the best step of the restorer grows as a power of the input's noise level (on the
seen-level training rollouts, log k* = a + b log sigma_y with b about 0.65), while the policy,
which reads level-free statistics that flatten out on heavy doses, stops after 6-7 steps at
every unseen dose. The floor ``floor(exp(a + b log sigma_y))``, fitted by least squares on the
training rollouts, forbids the policy to stop earlier; a power law carries beyond the seen
levels where a saturating network does not. At the seen levels the policy usually stops later
than the floor anyway.
"""

from __future__ import annotations

import torch

from durr.control.features import FEATURE_NAMES

LOG_SIGMA = FEATURE_NAMES.index("log_sigma_input")


def floor_steps(log_sigma: torch.Tensor, law: tuple[float, float]) -> torch.Tensor:
    """log_sigma (B,) -> (B,) int64 minimum step counts ``floor(exp(a + b log sigma))``."""
    a, b = law
    return torch.floor(torch.exp(a + b * log_sigma.double())).long()


def ceiling_steps(log_sigma: torch.Tensor, law: tuple[float, float]) -> torch.Tensor:
    """log_sigma (B,) -> (B,) int64 maximum step counts ``ceil(exp(a + b log sigma))``, at least 1
    (the step ceiling, ``durr.control.step_ceiling``)."""
    a, b = law
    return torch.ceil(torch.exp(a + b * log_sigma.double())).long().clamp_min(1)


def fit_step_floor(features: torch.Tensor, psnr: torch.Tensor) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of log(best step, at least 1) on log sigma_y over a bank of rollouts.

    features (B, T+1, NUM_FEATURES), psnr (B, T+1).
    """
    log_sigma = features[:, 0, LOG_SIGMA].double()
    best = psnr.argmax(dim=1).clamp_min(1).double()
    design = torch.stack([torch.ones_like(log_sigma), log_sigma], dim=1)
    a, b = torch.linalg.lstsq(design, torch.log(best)[:, None]).solution[:, 0].tolist()
    return float(a), float(b)
