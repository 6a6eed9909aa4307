"""The step ceiling: a maximum number of steps, a multiple of the step floor's power law.

With statistics of how white the removed part y - x_n still is (``durr.control.features``) the
CT policy stops well at the seen doses but, at doses heavier than any it trained on, it can run
on long after the best step (32 steps where the best was about 19 at d = 0.025): the removed
anatomy hides under more removed noise. The best step itself grows as a power of the input's
noise level (``durr.control.step_floor``), so the ceiling ``ceil(c exp(a + b log sigma_y))``
bounds the run at c times that law. The factor c is the one of ``CEILING_FACTORS`` with the
best mean PSNR of the policy's stops on the seen-level training rollouts, kept only if it beats
no ceiling there; ``(a + log c, b)`` is stored as the ceiling's own law.
"""

from __future__ import annotations

import math

import torch

from durr.control.step_floor import fit_step_floor
from durr.control.stopping import config_stops, mean_psnr_at

CEILING_FACTORS = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


@torch.no_grad()
def fit_step_ceiling(policy, features: torch.Tensor, psnr: torch.Tensor,
                     factors: tuple[float, ...] = CEILING_FACTORS) -> tuple[tuple[float, float] | None, dict]:
    """The ceiling law ``(a + log c, b)`` for the best factor c on a bank, or None when no factor
    beats the policy (with its own knee guard and step floor) without a ceiling.

    features (B, T+1, NUM_FEATURES), psnr (B, T+1). Returns (law or None, {"law": (a, b) of the
    best step, "factor": c, "bank_psnr_by_factor": {"%g" % c or "no ceiling": mean PSNR}}).
    """
    a, b = fit_step_floor(features, psnr)
    stop_prob = policy.stop_probability(features.float())

    def mean_psnr(law):
        return mean_psnr_at(psnr, config_stops(stop_prob, features, policy.config, step_ceiling=law))

    scores = {f"{c:g}": mean_psnr((a + math.log(c), b)) for c in factors}
    best = max(factors, key=lambda c: (scores[f"{c:g}"], c))
    scores["no ceiling"] = mean_psnr(None)
    kept = scores[f"{best:g}"] > scores["no ceiling"]
    info = {"law": [a, b], "factor": best if kept else None, "bank_psnr_by_factor": scores}
    return ((a + math.log(best), b) if kept else None), info
