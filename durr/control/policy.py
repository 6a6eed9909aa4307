"""The stopping policy: probability of stopping now, given the state's features."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from durr.control.features import FEATURE_NAMES

# A learned discrepancy principle: how much of the input's noise the estimate has removed, and
# how much high-frequency noise it still carries, both relative to the input's noise. At the
# right stopping time these ratios do not depend on how heavy the degradation is, so a slower
# dynamic at an unseen, heavier level simply runs longer. Left out on purpose: the absolute
# noise level and the step index (they pinned the stop to the training levels' step counts) and
# the size of the last update (a slow dynamic looks converged by it).
LEVEL_FREE_FEATURES = ("moved_over_sigma", "residual_noise_ratio")


@dataclass
class PolicyConfig:
    hidden: int = 32
    layers: int = 2
    features: tuple[str, ...] = field(default_factory=lambda: LEVEL_FREE_FEATURES)
    # the knee guard's threshold (``durr.control.knee``), fitted in stage 2; None: no guard
    knee_ratio: float | None = None
    # the step floor's law (a, b) (``durr.control.step_floor``), fitted in stage 2; None: no floor
    step_floor: tuple[float, float] | None = None
    # the step ceiling's law (a, b) (``durr.control.step_ceiling``), fitted in stage 2; None: no ceiling
    step_ceiling: tuple[float, float] | None = None
    # the discrepancy cap (``durr.control.moved_cap``): stop once rms(x_n - y) / sigma_y reaches it;
    # fitted in stage 2; None: no cap
    moved_cap: float | None = None

    def __post_init__(self):
        if self.moved_cap is not None and not self.moved_cap > 0.0:
            raise ValueError(f"moved_cap must be positive or unset, got {self.moved_cap}")
        for name in ("step_floor", "step_ceiling"):
            law = getattr(self, name)
            if law is not None:
                if len(law) != 2:
                    raise ValueError(f"{name} must be a pair (a, b), got {law}")
                setattr(self, name, (float(law[0]), float(law[1])))
        if self.knee_ratio is not None and not 0.0 < self.knee_ratio < 1.0:
            raise ValueError(f"knee_ratio must be in (0, 1) or unset, got {self.knee_ratio}")
        self.features = tuple(self.features)
        unknown = [f for f in self.features if f not in FEATURE_NAMES]
        if unknown or not self.features:
            raise ValueError(f"unknown policy features {unknown}; choose from {FEATURE_NAMES}")


class StopPolicy(nn.Module):
    """An MLP on standardised state features (see ``durr.control.features``).

    features (B, NUM_FEATURES) (all of ``FEATURE_NAMES``; the policy selects ``config.features``)
    -> stop logit (B,). ``p_stop = sigmoid(logit)``.
    The feature mean and std are buffers fitted once on the training rollouts
    (``fit_standardisation``), so a saved policy carries them.
    """

    def __init__(self, config: PolicyConfig | None = None):
        super().__init__()
        self.config = config = config or PolicyConfig()
        self.register_buffer("feature_index", torch.tensor([FEATURE_NAMES.index(f) for f in config.features]),
                             persistent=False)
        n_in = len(config.features)
        dims = [n_in] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(n_in))
        self.register_buffer("feature_std", torch.ones(n_in))

    @torch.no_grad()
    def fit_standardisation(self, features: torch.Tensor) -> None:
        """features (..., NUM_FEATURES): set the standardisation from a sample of states."""
        flat = features.reshape(-1, features.shape[-1])[:, self.feature_index]
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features[..., self.feature_index] - self.feature_mean) / self.feature_std
        return self.net(z).squeeze(-1)

    def stop_probability(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(features))
