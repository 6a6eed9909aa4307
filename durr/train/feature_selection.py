"""Choose the policy's features by how well they extrapolate, using seen levels only.

Which state statistics a stopping policy should look at depends on the degradation: for
noise, scale-free discrepancy ratios carry over to heavier levels; for streaks or aliasing,
how fast the dynamic still moves may matter too. The policy must stop well at levels heavier
than any it trained on, so candidates are compared on a rehearsal of exactly that: each is
trained on the lighter part of the seen range and scored (greedy return) on its heaviest
part. No unseen level is touched; the winner is then trained on the whole seen range.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from durr.control.policy import LEVEL_FREE_FEATURES, PolicyConfig, StopPolicy
from durr.train.distributed import World
from durr.train.reinforce import ReinforceConfig, episode_return, greedy_stops, train_policy

# The step index is never a candidate: a policy that reads it memorises the training levels'
# step counts and cannot extend the run at a heavier level (it did exactly that when tried on
# mr-rician, see docs/training.md).
CANDIDATE_FEATURES: tuple[tuple[str, ...], ...] = (
    LEVEL_FREE_FEATURES,
    LEVEL_FREE_FEATURES + ("update_over_sigma",),
    LEVEL_FREE_FEATURES + ("update_over_sigma", "log_sigma_input"),
)


def rehearsal_split(severity: torch.Tensor, heavy_fraction: float = 1 / 3,
                    light_fraction: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (lighter, heaviest) of episodes by severity (N,): the top ``heavy_fraction`` of the
    range, and below it everything (default) or only the bottom ``light_fraction`` of the range
    (a wider gap to extrapolate across)."""
    lo, hi = float(severity.min()), float(severity.max())
    cut = hi - heavy_fraction * (hi - lo)
    light = severity < cut if light_fraction is None else severity < lo + light_fraction * (hi - lo)
    return light, severity >= cut


def select_features(features: torch.Tensor, psnr: torch.Tensor, severity: torch.Tensor, base: PolicyConfig,
                    cfg: ReinforceConfig, candidates=CANDIDATE_FEATURES, world: World | None = None,
                    iterations: int = 1500) -> tuple[tuple[str, ...], list[dict]]:
    """The candidate feature set with the best greedy return on the heaviest seen episodes.

    features (N, T+1, F), psnr (N, T+1), severity (N,) of a rollout bank at seen levels.
    Returns (best feature names, [{"features", "rehearsal_return", "rehearsal_oracle"}, ...]).
    Falls back to ``base.features`` when the bank has a single severity.
    """
    light, heavy = rehearsal_split(severity)
    if not light.any() or not heavy.any():
        return tuple(base.features), []
    scores = []
    short = replace(cfg, iterations=min(iterations, cfg.iterations))
    oracle = float((psnr[heavy].max(1).values - psnr[heavy, 0]).mean())
    for names in candidates:
        torch.manual_seed(cfg.seed)
        policy = StopPolicy(PolicyConfig(hidden=base.hidden, layers=base.layers, features=names))
        train_policy(policy, features[light], psnr[light], short, world=world)
        with torch.no_grad():
            stops = greedy_stops(policy.stop_probability(features[heavy]))
        ret = float(episode_return(psnr[heavy], stops, cfg.step_cost).mean())
        scores.append({"features": list(names), "rehearsal_return": ret, "rehearsal_oracle": oracle})
    best = max(scores, key=lambda s: s["rehearsal_return"])
    return tuple(best["features"]), scores
