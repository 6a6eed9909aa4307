"""The knee guard: a one-step look-ahead that wraps the learned stopping policy.

On heavy noise the restoration dynamic has three phases: a slow start (small, growing
updates), a burst in which the estimate moves fast and its PSNR jumps, and a slow drift after
it in which the image is over-smoothed little by little. The best step is the end of the
burst (the "knee"). Seen levels are light enough that the burst comes within the first steps,
so a policy trained on them has never seen a slow start: at unseen levels it stopped inside
the slow start on some slices and far into the drift on others.

The guard looks one step ahead, at the update ``u_{n+1} = rms(x_{n+1} - x_n) / sigma_y``
against the largest update so far, and

- stops at ``x_n`` when ``u_{n+1} < knee_ratio * max(u_1 .. u_{n+1})`` (the burst is over);
- lets the policy stop at ``x_n`` only when ``u_{n+1}`` is not a new largest update (the
  dynamic is no longer accelerating).

``knee_ratio`` is fitted after REINFORCE on the same seen-level rollouts
(``fit_knee_ratio``). The look-ahead costs one step per image.
"""

from __future__ import annotations

import torch

from durr.control.stopping import config_stops, mean_psnr_at

KNEE_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


@torch.no_grad()
def fit_knee_ratio(policy, features: torch.Tensor, psnr: torch.Tensor,
                   grid: tuple[float, ...] = KNEE_GRID) -> tuple[float | None, dict]:
    """The ``knee_ratio`` of ``grid`` whose guarded stops have the best mean PSNR on a bank,
    or None when no ratio beats the policy alone there.

    features (B, T+1, NUM_FEATURES), psnr (B, T+1). Returns (ratio, {"%g" % ratio or
    "policy alone": mean PSNR}).
    """
    stop_prob = policy.stop_probability(features.float())

    def mean_psnr(ratio):
        return mean_psnr_at(psnr, config_stops(stop_prob, features, policy.config, knee_ratio=ratio))

    scores = {f"{r:g}": mean_psnr(r) for r in grid}
    best = max(grid, key=lambda r: (scores[f"{r:g}"], -r))
    scores["policy alone"] = mean_psnr(None)
    return (best if scores[f"{best:g}"] > scores["policy alone"] else None), scores
