"""The stopping policy: probability of stopping now, given the state's features."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from durr.control.features import NUM_FEATURES


@dataclass
class PolicyConfig:
    hidden: int = 32
    layers: int = 2


class StopPolicy(nn.Module):
    """An MLP on standardised state features (see ``durr.control.features``).

    features (B, NUM_FEATURES) -> stop logit (B,). ``p_stop = sigmoid(logit)``.
    The feature mean and std are buffers fitted once on the training rollouts
    (``fit_standardisation``), so a saved policy carries them.
    """

    def __init__(self, config: PolicyConfig | None = None):
        super().__init__()
        self.config = config = config or PolicyConfig()
        dims = [NUM_FEATURES] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("feature_std", torch.ones(NUM_FEATURES))

    @torch.no_grad()
    def fit_standardisation(self, features: torch.Tensor) -> None:
        """features (..., NUM_FEATURES): set the standardisation from a sample of states."""
        flat = features.reshape(-1, NUM_FEATURES)
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp_min(1e-3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.feature_mean) / self.feature_std
        return self.net(z).squeeze(-1)

    def stop_probability(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(features))
