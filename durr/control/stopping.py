"""Where policy-mode rollouts stop, computed for whole trajectories at once.

``DURR.rollout`` decides step by step; banks of rollouts (stage 2), held-out tables and
benchmarks of many policies need the same decisions from recorded features. This module is
that rule in one place: the policy's first stop probability over 0.5, wrapped by the knee guard
(``durr.control.knee``), the step floor (``durr.control.step_floor``) and the step ceiling
(``durr.control.step_ceiling``) when the policy's config has them, the discrepancy cap
(``durr.control.moved_cap``) over all three, and step 0 for an input without measurable noise.
"""

from __future__ import annotations

import math

import torch

from durr.control.features import FEATURE_NAMES, NOISE_FREE_SIGMA
from durr.control.step_floor import LOG_SIGMA, ceiling_steps, floor_steps

UPDATE = FEATURE_NAMES.index("update_over_sigma")
MOVED = FEATURE_NAMES.index("moved_over_sigma")


def stop_steps(stop_prob: torch.Tensor, features: torch.Tensor, knee_ratio: float | None = None,
               step_floor: tuple[float, float] | None = None, moved_cap: float | None = None,
               step_ceiling: tuple[float, float] | None = None) -> torch.Tensor:
    """The stop step of each trajectory.

    stop_prob (B, T+1) the policy's stop probability per step; features (B, T+1, NUM_FEATURES)
    the recorded state features. Returns (B,) int64 in [0, T] (T when nothing stops earlier).
    """
    stop = stop_prob > 0.5
    if knee_ratio is not None:
        ahead = features[:, 1:, UPDATE].float()   # u_{n+1}, seen when deciding at step n
        peak = torch.cummax(ahead, dim=1).values  # max(u_1 .. u_{n+1})
        growing = ahead >= torch.cat([torch.zeros_like(peak[:, :1]), peak[:, :-1]], dim=1)
        stop = torch.cat([(ahead < knee_ratio * peak) | (stop[:, :-1] & ~growing), stop[:, -1:]], dim=1)
    steps = torch.arange(stop.shape[1], device=stop.device)
    if step_floor is not None:
        stop = stop & (steps[None, :] >= floor_steps(features[:, 0, LOG_SIGMA], step_floor)[:, None])
    if step_ceiling is not None:
        stop = stop | (steps[None, :] >= ceiling_steps(features[:, 0, LOG_SIGMA], step_ceiling)[:, None])
    if moved_cap is not None:  # over the floor too: a safety net for inputs without removable noise
        stop = stop | (features[:, :, MOVED] >= moved_cap)
    stop[:, 0] |= features[:, 0, LOG_SIGMA] < math.log(NOISE_FREE_SIGMA)  # no measurable noise
    stop[:, -1] = True
    return torch.argmax(stop.int(), dim=1)


def config_stops(stop_prob: torch.Tensor, features: torch.Tensor, cfg, **override) -> torch.Tensor:
    """``stop_steps`` with the knee guard, floor, ceiling and cap of a ``PolicyConfig``, any of them
    replaced by keyword (``knee_ratio=``, ``step_floor=``, ``step_ceiling=``, ``moved_cap=``): how
    each wrapper's fit scores its candidates with the others in place. (B,) int64."""
    wrappers = {"knee_ratio": cfg.knee_ratio, "step_floor": cfg.step_floor,
                "step_ceiling": cfg.step_ceiling, "moved_cap": cfg.moved_cap, **override}
    return stop_steps(stop_prob, features, **wrappers)


def policy_stops(policy, features: torch.Tensor) -> torch.Tensor:
    """``stop_steps`` of a ``StopPolicy`` with the guard, floor, ceiling and cap of its own config; (B,) int64."""
    with torch.no_grad():
        stop_prob = policy.stop_probability(features.float())
    return config_stops(stop_prob, features, policy.config)


def mean_psnr_at(psnr: torch.Tensor, stops: torch.Tensor) -> float:
    """Mean over a bank of the PSNR (B, T+1) at each trajectory's stop step (B,): how the fits of
    the knee guard, the step floor and ceiling and the discrepancy cap score a rule."""
    return float(psnr[torch.arange(psnr.shape[0]), stops].float().mean())
