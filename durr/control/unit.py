"""The restoration unit F(x, y): a small CNN fed the current estimate and the degraded scan."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class UnitConfig:
    """Shape of the restoration unit (defaults chosen for speed at 512x512 on 2 CPU threads)."""

    channels: int = 16
    depth: int = 5          # convolution layers, including the first and the last
    bias: bool = True       # the bias-free variant degraded with longer runs in our probes
    activation: str = "relu"
    last_layer_gain: float = 0.1  # start near the identity dynamic, but not exactly at it


def channels_last_(module: nn.Module) -> nn.Module:
    """Store ``module``'s convolution weights channels-last, in place.

    With 16 channels and a 3x3 kernel, PyTorch's default (NCHW) CPU convolution is 1.7-1.8x slower
    than the oneDNN kernel it picks for channels-last weights (``python -m
    durr.bench.unit_layout``); loading, saving and the result are unchanged (within 1e-8).
    """
    return module.to(memory_format=torch.channels_last)


_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
# In place where PyTorch allows it: each activation of a 16-channel 512x512 slice is a 16 MB
# buffer, and not allocating it made a 20-step CT rollout about 5% faster on 2 CPU threads
# (same output; durr.bench.cli_speed's CT slice: 1.03-1.10 s before, 0.93-0.97 s after). Autograd is unaffected: the convolution before it does not need its output.
_IN_PLACE = {"relu", "silu"}


def make_activation(name: str) -> nn.Module:
    """The activation module ``name`` (in place when that is possible)."""
    return _ACTIVATIONS[name](inplace=True) if name in _IN_PLACE else _ACTIVATIONS[name]()


class RestorationUnit(nn.Module):
    """``F(x, y)``: the update of one step of ``x_{n+1} = x_n + F(x_n, y)``.

    Input injection: the degraded scan ``y`` is concatenated to the estimate at every step,
    so the dynamic always knows what it started from. Weights are shared across steps.

    Shapes: ``x, y`` (B, 1, H, W) in the working domain -> update (B, 1, H, W).
    """

    def __init__(self, config: UnitConfig | None = None):
        super().__init__()
        self.config = config = config or UnitConfig()
        if config.activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {config.activation!r}; choose from {sorted(_ACTIVATIONS)}")
        if config.depth < 2:
            raise ValueError(f"depth must be at least 2, got {config.depth}")
        widths = [2] + [config.channels] * (config.depth - 1) + [1]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=config.bias))
            if i < config.depth - 1:
                layers.append(make_activation(config.activation))
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            last = self.net[-1]
            last.weight.mul_(config.last_layer_gain)
            if last.bias is not None:
                last.bias.zero_()
        channels_last_(self.net)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, y], dim=1))
