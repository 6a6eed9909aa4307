"""The fixed-depth baseline: a DnCNN-style residual CNN with a comparable parameter budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from durr.control.unit import channels_last_


@dataclass
class FixedCNNConfig:
    channels: int = 16
    depth: int = 5  # conv layers: 5 x 16 channels = 7.3k parameters, the DURR unit's budget (7.4k)

    def to_dict(self) -> dict:
        return asdict(self)


class FixedDepthCNN(nn.Module):
    """``x = y - R(y)``: conv-ReLU, (depth-2) x conv-ReLU, conv; predicts the degradation.

    Shapes: y (B, 1, H, W) working domain -> restored (B, 1, H, W).
    """

    def __init__(self, config: FixedCNNConfig | None = None):
        super().__init__()
        self.config = config = config or FixedCNNConfig()
        widths = [1] + [config.channels] * (config.depth - 1) + [1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(a, b, 3, padding=1))
            if i < config.depth - 1:
                layers.append(nn.ReLU(inplace=True))  # see durr.control.unit.make_activation
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
        channels_last_(self.net)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.net(y)
