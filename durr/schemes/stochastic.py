"""Stochastic depth as a stochastic differential equation (Lu et al., ICML 2018, Section 3).

Stochastic depth (Huang, Sun, Liu, Sedra, Weinberger, ECCV 2016) drops the residual branch of
block ``n`` with probability ``1 - p_n`` during training. Written as
``x_{n+1} = x_n + eta_n f(x_n) = x_n + p_n f(x_n) + (eta_n - p_n) f(x_n)``, with ``eta_n`` a
Bernoulli(``p_n``) variable, it is an Euler-Maruyama step of an SDE whose drift is the
expected branch ``p_n F`` and whose noise has variance ``p_n (1 - p_n)``; at test time the
branch is replaced by its mean ``p_n f``. The survival probability falls linearly with depth,
``p_n = 1 - (n + 1) / L * (1 - p_L)`` (Huang et al.'s rule, ``L = max_steps``).

The wrapper applies to any step rule: it scales the residual function that the wrapped rule
sees, so for multi-stage rules (RK2, PolyNet) every stage of step ``n`` shares the same draw.
"""

from __future__ import annotations

import torch

from durr.schemes.rules import StepRule

__all__ = ["StochasticDepth"]


class StochasticDepth(StepRule):
    """Wrap a step rule with stochastic depth.

    Parameters
    ----------
    rule : StepRule
        The rule to wrap (its ``max_steps`` is the depth ``L``).
    p_last : float
        Survival probability of the last step ``p_L`` in (0, 1].
    generator : torch.Generator, optional
        Source of the Bernoulli draws (training mode only), for reproducible runs.

    Notes
    -----
    In training mode the draw is per sample: a (B, 1, 1, 1) mask of 0/1 multiplies ``f``. In
    eval mode ``f`` is scaled by ``p_n``. Steps beyond ``L`` use ``p_L``.

    Examples
    --------
    >>> from durr.schemes import make_rule
    >>> rule = make_rule("rk2", max_steps=8, stochastic_depth=0.5)
    >>> rule.survival(0), rule.survival(7)
    (0.9375, 0.5)
    """

    def __init__(self, rule: StepRule, p_last: float = 0.5, generator: torch.Generator | None = None):
        super().__init__(rule.max_steps)
        if not 0.0 < float(p_last) <= 1.0:
            raise ValueError(f"stochastic depth survival p_last must be in (0, 1], got {p_last!r}")
        self.rule, self.p_last, self.generator = rule, float(p_last), generator
        self.name, self.order = f"{rule.name}+sd", rule.order

    def survival(self, n: int) -> float:
        """Survival probability ``p_n`` of the residual branch at step ``n``."""
        n = min(int(n), self.max_steps - 1)
        return 1.0 - (n + 1) / self.max_steps * (1.0 - self.p_last)

    def init_state(self, x0, *args, **kwargs):
        return self.rule.init_state(x0, *args, **kwargs)

    def step(self, f, x, state, n):
        p = self.survival(n)
        if self.training:
            u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=self.generator)
            scale = (u < p).to(device=x.device, dtype=x.dtype)
        else:
            scale = p
        if isinstance(f, (tuple, list)):
            g = tuple((lambda z, h=h: scale * h(z)) for h in f)
        else:
            g = lambda z: scale * f(z)  # noqa: E731
        return self.rule.step(g, x, state, n)

    def extra_repr(self) -> str:
        return f"p_last={self.p_last}"
