"""Stage 1's schedule: a degradation level -> the number of steps the restorer must take."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from durr.data.sampling import severity


@dataclass
class StepSchedule:
    """Linear in severity (noise std): ``n(level) = n_min + (n_max - n_min) * t``.

    ``t`` is 0 at the mildest and 1 at the heaviest seen level, so heavier degradation gets
    more steps and, extrapolated, an unseen heavier level asks for more still. The restorer
    is trained to be right at ``n(level)``; when to stop on real data is the policy's job.
    """

    family: object  # a registered name or a Degradation
    seen: tuple[float, float]
    n_min: int = 2
    n_max: int = 7

    def steps(self, level: torch.Tensor) -> torch.Tensor:
        """level (B,) -> steps (B,) int64, at least 1."""
        lo, hi = severity(self.family, torch.tensor(self.seen)).sort().values.tolist()
        t = (severity(self.family, level) - lo) / (hi - lo)
        return (self.n_min + (self.n_max - self.n_min) * t).round().clamp_min(1).long()
