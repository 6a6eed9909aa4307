"""Name -> step rule registry, in the spirit of ``torchdiffeq.odeint(..., method=...)``."""

from __future__ import annotations

from typing import Callable

from durr.schemes.rules import LM, RK2, Euler, PolyNet, RevNet, StepRule
from durr.schemes.stochastic import StochasticDepth

__all__ = ["make_rule", "rule_names", "register_rule", "unroll"]

_RULES: dict[str, type[StepRule]] = {
    "euler": Euler,
    "lm": LM,
    "rk2": RK2,
    "polynet": PolyNet,
    "revnet": RevNet,
}


def rule_names() -> list[str]:
    """Names accepted by :func:`make_rule`, sorted."""
    return sorted(_RULES)


def register_rule(name: str, cls: type[StepRule]) -> None:
    """Add a step rule class under ``name`` (a subclass of :class:`StepRule`)."""
    if not (isinstance(cls, type) and issubclass(cls, StepRule)):
        raise TypeError(f"register_rule: {cls!r} is not a StepRule subclass")
    _RULES[name] = cls


def make_rule(name: str, max_steps: int = 32, stochastic_depth: float | None = None, **kwargs) -> StepRule:
    """Build a step rule by name.

    Parameters
    ----------
    name : str
        One of :func:`rule_names` (``euler``, ``lm``, ``rk2``, ``polynet``, ``revnet``).
    max_steps : int
        Steps the rule is built for (length of LM's ``k``, depth for stochastic depth).
    stochastic_depth : float, optional
        If given, wrap the rule in :class:`StochasticDepth` with this last-step survival.
    **kwargs
        Options of the rule class (``LM(k_init=..., learn_k=...)``, ``RK2(variant=...)``,
        ``RevNet(split=..., aux_init=...)``).

    Returns
    -------
    StepRule
        An ``nn.Module`` with ``init_state(x0)`` and ``step(f, x, state, n)``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or bad options.

    Examples
    --------
    >>> import torch
    >>> rule = make_rule("lm", max_steps=4)
    >>> x = torch.zeros(1, 1, 4, 4); state = rule.init_state(x)
    >>> x, state = rule.step(lambda z: z + 1.0, x, state, 0)
    >>> float(x.mean())
    1.0
    """
    if not isinstance(name, str) or name.lower() not in _RULES:
        raise ValueError(f"unknown step rule {name!r}; valid names: {', '.join(rule_names())}")
    try:
        rule = _RULES[name.lower()](max_steps=max_steps, **kwargs)
    except TypeError as err:
        raise ValueError(f"bad options for step rule {name!r}: {err}") from None
    if stochastic_depth is not None:
        rule = StochasticDepth(rule, p_last=stochastic_depth)
    return rule


def unroll(f: Callable, x0, steps: int, method: str = "euler", return_all: bool = False, **kwargs):
    """Run ``steps`` steps of the rule ``method`` from ``x0``: the one-call verb.

    ``f`` is the residual function (B, C, H, W) -> (B, C, H, W) that includes the step size.
    Returns the last iterate, or all ``steps + 1`` iterates with ``return_all=True``.
    """
    rule = make_rule(method, max_steps=max(int(steps), 1), **kwargs)
    return rule.rollout(f, x0, steps, return_all=return_all)
