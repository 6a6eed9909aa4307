"""Numerical schemes as network blocks ("deep networks are discretised differential equations").

One verb and one registry, like ``torchdiffeq``'s ``method=``::

    from durr.schemes import make_rule, rule_names
    rule = make_rule("lm", max_steps=32)        # euler | lm | rk2 | polynet | revnet
    state = rule.init_state(x0)                 # x0: (B, C, H, W)
    x1, state = rule.step(f, x0, state, 0)      # f: (B, C, H, W) -> (B, C, H, W)

``f`` is the residual function (for the restorer, ``F(., y)`` with the degraded scan bound).
Also here: :class:`StochasticDepth` (the SDE view, wraps any rule), :func:`build_backbone`
(ResNet-like classifiers/regressors from a rule), :class:`ReversibleSequence` (RevNet with a
memory-saving backward pass). PDE-Net operators live in :mod:`durr.schemes.pde`.
"""

from durr.schemes.backbone import Backbone, ResidualBranch, build_backbone
from durr.schemes.registry import make_rule, register_rule, rule_names, unroll
from durr.schemes.revnet import RevBlock, ReversibleSequence, peak_memory_bytes, saved_tensor_bytes
from durr.schemes.rules import LM, RK2, Euler, PolyNet, RevNet, StepRule
from durr.schemes.stochastic import StochasticDepth

__all__ = [
    "make_rule", "rule_names", "register_rule", "unroll",
    "StepRule", "Euler", "LM", "RK2", "PolyNet", "RevNet", "StochasticDepth",
    "build_backbone", "Backbone", "ResidualBranch",
    "RevBlock", "ReversibleSequence", "saved_tensor_bytes", "peak_memory_bytes",
]
