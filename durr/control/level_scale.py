"""The level scale: an input noisier than any seen in training is scaled down before the dynamic runs.

The unit's convolutions have biases, so what it does depends on absolute intensities: the
thresholds it learned separate noise of the amplitudes it was trained on (working domain, the
seen levels) from anatomy. Heavier noise looks to it like structure, and the dynamic first
crawls (the MR "slow start", ``durr.control.knee``) before it removes it. Scaling the input by
``a < 1`` brings the noise amplitude back into the trained range while the image keeps its
content (lower contrast, same signal-to-noise ratio); the estimate is scaled back by ``1 / a``.
For every step rule here (linear in the unit's evaluations) this is the same as running the
dynamic with the update ``F(a x, a y) / a``.

``a = min(1, noise_ref / sigma_y)`` per image, with ``sigma_y`` the Haar-MAD noise level of the
input in the working domain (``durr.control.features.noise_sigma``) and ``noise_ref`` the median
of that statistic over the stage-2 rollouts' inputs (training-split slices at seen levels) in the
heaviest fifth of the seen range (``fit_noise_ref``): inputs at the seen levels run (almost always) unscaled, heavier ones run as
if at the heaviest seen level. Policy features are ratios to ``sigma_y``, so the policy reads the
scaled trajectory as it would a seen level's.
"""

from __future__ import annotations

import torch

# the share of the seen range, at its heavy end, whose noise levels set noise_ref
HEAVIEST_SHARE = 0.2


def level_scale(sigma_y: torch.Tensor, noise_ref: float | None) -> torch.Tensor:
    """(B,) factors ``min(1, noise_ref / sigma_y)``; all ones when ``noise_ref`` is None."""
    if noise_ref is None:
        return torch.ones_like(sigma_y)
    return (noise_ref / sigma_y.clamp_min(1e-12)).clamp(max=1.0)


@torch.no_grad()
def fit_noise_ref(sigmas: torch.Tensor, levels: torch.Tensor, degradation,
                  share: float = HEAVIEST_SHARE) -> float:
    """Median noise level of the bank's realisations in the heaviest ``share`` of the seen range.

    sigmas (N,) the working-domain noise level of each degraded bank slice; levels (N,) their
    degradation levels (seen levels only); degradation : the family (its ``severity`` and
    ``seen`` range). Raises ValueError when no realisation falls in that share.
    """
    lo, hi = degradation.severity(torch.tensor(degradation.seen, dtype=torch.float64)).sort().values.tolist()
    severity = degradation.severity(levels.to(torch.float64))
    heavy = severity >= hi - share * (hi - lo)
    if not bool(heavy.any()):
        raise ValueError(f"no bank slice in the heaviest {share:.0%} of the seen range {degradation.seen}")
    return round(float(sigmas[heavy].median()), 5)
