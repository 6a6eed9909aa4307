"""The discrepancy cap: stop once the estimate has moved further from the input than noise explains.

A restorer that removes noise of level sigma changes the input by about sigma per pixel
(Morozov's discrepancy principle: rms(x - y) ~ sigma). On the training rollouts the best step
is reached with rms(x_n - y) / sigma_y between about 0.8 and 1.9 (the Haar-MAD sigma_y is
biased for Rician and correlated noise), and the restorer goes past 3 only long after its best
step. On an input with no removable noise, a clean scan whose Haar-MAD "noise" is quantisation
or fine structure, the policy's residual-noise statistic never drops, so it runs on while the
estimate drifts far from the input (the bundled MNI sample: 9 sigma and 31% of its maximum
after 40 steps). The cap stops there, over the policy and the step floor.

Its value is ``CAP_MARGIN`` times the largest rms(x - y) / sigma_y at the best step of any
seen-level training rollout, kept only if it costs nothing on those rollouts. The margin is
there because the statistic at the best step grows with the noise level (MR: median 1.59 on
the seen-level rollouts, 1.8-1.9 on dev images at the heaviest unseen level): the tightest cap
that is free on the seen levels (1.75 for MR) would stop heavy-noise scans early.
"""

from __future__ import annotations

import torch

from durr.control.stopping import MOVED, config_stops, mean_psnr_at

CAP_MARGIN = 1.5


@torch.no_grad()
def fit_moved_cap(policy, features: torch.Tensor, psnr: torch.Tensor, margin: float = CAP_MARGIN,
                  tolerance_db: float = 0.005) -> tuple[float | None, dict]:
    """``margin`` x the largest moved/sigma at a best step of the bank, rounded to 0.01, or None
    when that cap costs more than ``tolerance_db`` of mean PSNR on the bank (the policy with its
    own knee guard, step floor and step ceiling).

    features (B, T+1, NUM_FEATURES), psnr (B, T+1). Returns (cap, {"capped": PSNR, "no cap": PSNR,
    "largest at best step": value}).
    """
    at_best = float(features[torch.arange(psnr.shape[0]), psnr.argmax(dim=1), MOVED].max())
    cap = round(margin * at_best, 2)
    stop_prob = policy.stop_probability(features.float())

    def mean_psnr(limit):
        return mean_psnr_at(psnr, config_stops(stop_prob, features, policy.config, moved_cap=limit))

    scores = {"capped": mean_psnr(cap), "no cap": mean_psnr(None), "largest at best step": at_best}
    return (cap if scores["capped"] >= scores["no cap"] - tolerance_db else None), scores
