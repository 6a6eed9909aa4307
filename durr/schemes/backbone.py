"""ResNet-like backbones whose residual blocks are the steps of a chosen step rule.

``build_backbone("lm", channels=32, depth=6, num_classes=10)`` gives a classifier: a stem
(3x3 convolution + ReLU: the *first layer*, the one YOPO treats apart), ``depth`` residual
branches ``f_n`` advanced by the rule (``x_{n+1} = rule.step(f_n, x_n)``), and a pooled linear
head. With ``out_channels``
instead of ``num_classes`` it is an image-to-image regressor with a 3x3 convolutional head.
The feature maps keep their resolution (one stage): these are small models for small images.

The ``revnet`` backbone is a :class:`~durr.schemes.revnet.ReversibleSequence` of channel-split
blocks, with the memory-saving backward pass by default.
"""

from __future__ import annotations

import torch
from torch import nn

from durr.schemes.registry import make_rule
from durr.schemes.revnet import RevBlock, ReversibleSequence

__all__ = ["ResidualBranch", "Backbone", "build_backbone"]


class ResidualBranch(nn.Module):
    """The residual function ``f``: ReLU -> conv3x3 -> ReLU -> conv3x3, (B, C, H, W) -> same.

    The last convolution starts scaled by ``gain`` so that the dynamic starts close to (not
    at) the identity map.
    """

    def __init__(self, channels: int, hidden: int | None = None, gain: float = 0.1):
        super().__init__()
        hidden = hidden or channels
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        with torch.no_grad():
            self.conv2.weight.mul_(gain)
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(torch.relu(x))))


class Backbone(nn.Module):
    """``head(body(stem(x)))`` with the body driven by a step rule.

    Shapes: (B, in_channels, H, W) -> (B, num_classes) for a classifier, or
    (B, out_channels, H, W) for a regressor.
    """

    def __init__(self, rule_name: str, stem: nn.Module, branches: nn.ModuleList | ReversibleSequence,
                 head: nn.Module, rule: nn.Module | None):
        super().__init__()
        self.rule_name = rule_name
        self.stem, self.branches, self.head, self.rule = stem, branches, head, rule

    @property
    def first_layer(self) -> nn.Module:
        """The stem: the only layer an input perturbation enters directly (see YOPO)."""
        return self.stem

    def body(self, z: torch.Tensor) -> torch.Tensor:
        """Residual steps on stem features (B, C, H, W) -> (B, C, H, W)."""
        if self.rule is None:  # reversible sequence
            return self.branches(z)
        state = self.rule.init_state(z)
        for n, f in enumerate(self.branches):
            z, state = self.rule.step(f, z, state, n)
        return z

    def rest(self, z: torch.Tensor) -> torch.Tensor:
        """Everything after the first layer: ``head(body(z))``."""
        return self.head(self.body(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.stem(x))


def build_backbone(rule_name: str, channels: int, depth: int, num_classes: int | None = None, *,
                   out_channels: int | None = None, in_channels: int = 1, hidden: int | None = None,
                   stochastic_depth: float | None = None, memory_saving: bool = True,
                   gain: float = 0.1, pool: int = 1, **rule_kwargs) -> Backbone:
    """Build a ResNet-like classifier or regressor from a step rule.

    Parameters
    ----------
    rule_name : str
        A name of :func:`durr.schemes.rule_names`.
    channels : int
        Feature channels (even for ``revnet``: each half has ``channels // 2``).
    depth : int
        Number of residual blocks (steps).
    num_classes : int, optional
        Build a classifier with this many logits (global average pooling + linear).
    out_channels : int, optional
        Build an image-to-image regressor instead (exactly one of the two).
    in_channels : int
        Input channels.
    hidden : int, optional
        Width inside each residual branch (default ``channels``).
    stochastic_depth : float, optional
        Survival probability of the last block; wraps the rule in stochastic depth
        (not available for ``revnet``, whose recomputation needs deterministic blocks).
    memory_saving : bool
        ``revnet`` only: recompute activations in the backward pass.
    gain : float
        Initial scale of each branch's last convolution.
    pool : int
        Classifier: features are average-pooled to ``pool x pool`` before the linear layer
        (1 = global pooling as in ResNet; small images such as 8x8 digits learn much faster
        when some layout is kept, e.g. ``pool=4``).
    **rule_kwargs
        Passed to :func:`durr.schemes.make_rule` (e.g. ``variant="midpoint"`` for rk2).

    Examples
    --------
    >>> net = build_backbone("rk2", channels=16, depth=3, num_classes=10)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    if (num_classes is None) == (out_channels is None):
        raise ValueError("build_backbone: give exactly one of num_classes (classifier) or out_channels (regressor)")
    if depth < 1 or channels < 1:
        raise ValueError(f"build_backbone: depth and channels must be >= 1, got depth={depth}, channels={channels}")
    stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU())
    if num_classes is not None:
        head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(pool), nn.Flatten(),
                             nn.Linear(channels * pool * pool, num_classes))
    else:
        head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
    if rule_name == "revnet":
        if channels % 2:
            raise ValueError(f"build_backbone: revnet needs an even channel count, got {channels}")
        if stochastic_depth is not None:
            raise ValueError("build_backbone: stochastic depth is not available for revnet")
        half, half_hidden = channels // 2, (hidden or channels) // 2
        blocks = [RevBlock(ResidualBranch(half, half_hidden, gain), ResidualBranch(half, half_hidden, gain))
                  for _ in range(depth)]
        return Backbone(rule_name, stem, ReversibleSequence(blocks, memory_saving=memory_saving), head, None)
    rule = make_rule(rule_name, max_steps=depth, stochastic_depth=stochastic_depth, **rule_kwargs)
    branches = nn.ModuleList(ResidualBranch(channels, hidden, gain) for _ in range(depth))
    return Backbone(rule_name, stem, branches, head, rule)
