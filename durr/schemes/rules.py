"""Step rules: one step of a numerical scheme for ``x' = F(x)``, read as a residual block.

A step rule advances the state of a discrete dynamic by one step, given the residual
function ``f`` (which already carries the step size: ``f(x) = h F(x)``)::

    state = rule.init_state(x0)                # x0: (B, C, H, W)
    x1, state = rule.step(f, x0, state, 0)     # f: (B, C, H, W) -> (B, C, H, W)
    x2, state = rule.step(f, x1, state, 1)     # n counts steps from 0

The base class owns the loop (:meth:`StepRule.rollout`); a subclass states its ``order``
(the order of accuracy of its global error for a smooth ``F`` with ``f = h F``) and a step
of a few lines. The state is opaque to the caller: a dict holding what a multistep rule
needs (the previous iterate for LM, the auxiliary half for RevNet).

Rules (Lu, Zhong, Li, Dong, "Beyond finite layer neural networks", ICML 2018, Table 1):

=========  =================================================  =====
name       step                                               order
=========  =================================================  =====
euler      ``x + f(x)`` (ResNet)                                1
lm         ``(1-k_n) x_n + k_n x_{n-1} + f(x_n)`` (LM-ResNet)   1 *
rk2        Heun: ``x + (f(x) + f(x + f(x))) / 2`` (FractalNet)  2
polynet    ``x + f(x) + f(f(x))`` (PolyNet, ~ backward Euler)   1
revnet     coupled Euler on two halves (RevNet)                 1 / 2 **
=========  =================================================  =====

\\* LM with a fixed ``k`` is a consistent first-order scheme for ``(1 + k) x' = F(x)``
(its modified equation; the paper's Section 2); ``k = 1`` is the leapfrog (midpoint)
rule, second order when started accurately. \\** see :class:`RevNet`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

Tensor = torch.Tensor
ResidualFn = Callable[[Tensor], Tensor]
State = dict[str, Any]

__all__ = ["StepRule", "Euler", "LM", "RK2", "PolyNet", "RevNet"]


class StepRule(nn.Module):
    """Base class of the step rules: owns the loop, subclasses implement :meth:`step`.

    Parameters
    ----------
    max_steps : int
        Number of steps the rule is built for (sizes per-step parameters such as LM's
        ``k_n``). Steps beyond it reuse the last per-step parameter.
    """

    name: str = "base"
    order: int = 1

    def __init__(self, max_steps: int = 32):
        super().__init__()
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
        self.max_steps = int(max_steps)

    def init_state(self, x0: Tensor) -> State:
        """The state before step 0, for the initial iterate ``x0`` (B, C, H, W)."""
        return {}

    def step(self, f: ResidualFn, x: Tensor, state: State, n: int) -> tuple[Tensor, State]:
        """One step ``x_n -> x_{n+1}``; returns the new iterate (same shape) and state."""
        raise NotImplementedError

    def rollout(self, f: ResidualFn, x0: Tensor, steps: int, return_all: bool = False):
        """Run ``steps`` steps from ``x0``; the last iterate, or the list of all ``steps + 1``."""
        state = self.init_state(x0)
        x, xs = x0, [x0]
        for n in range(int(steps)):
            x, state = self.step(f, x, state, n)
            if return_all:
                xs.append(x)
        return xs if return_all else x

    def extra_repr(self) -> str:
        return f"max_steps={self.max_steps}"


class Euler(StepRule):
    """Forward Euler, ``x_{n+1} = x_n + f(x_n)``: the residual block of ResNet."""

    name, order = "euler", 1

    def step(self, f, x, state, n):
        return x + f(x), state


class LM(StepRule):
    """Linear two-step rule of LM-ResNet (Lu, Zhong, Li, Dong, ICML 2018).

    ``x_{n+1} = (1 - k_n) x_n + k_n x_{n-1} + f(x_n)``; step 0 (no ``x_{-1}``) is a plain
    Euler step. One scalar ``k_n`` per step, stored in the parameter ``k`` of length
    ``max_steps``, initialised uniformly in (-0.1, 0) (the paper's sign convention).

    Parameters
    ----------
    max_steps : int
        Length of ``k``; a step ``n >= max_steps`` uses ``k[max_steps - 1]``.
    k_init : float or tensor, optional
        Fixed initial value(s) of ``k`` instead of the random draw.
    learn_k : bool
        Whether ``k`` is trained (an ``nn.Parameter``) or a fixed buffer.
    generator : torch.Generator, optional
        For the random initialisation.

    Notes
    -----
    With a fixed ``k`` the scheme is consistent with ``(1 + k) x' = F(x)`` and of order 1
    for ``k`` in (-1, 1) (characteristic roots 1 and ``-k``); ``k = 1`` gives the leapfrog
    rule ``x_{n+1} = x_{n-1} + f(x_n)``, of order 2 for ``2 x' = F(x)`` when ``x_1`` is
    second-order accurate (pass ``x_prev`` to :meth:`init_state`).
    """

    name, order = "lm", 1

    def __init__(self, max_steps: int = 32, k_init: float | Tensor | None = None, learn_k: bool = True,
                 generator: torch.Generator | None = None):
        super().__init__(max_steps)
        if k_init is None:
            k = -0.1 * torch.rand(self.max_steps, generator=generator)  # uniform in (-0.1, 0]
        else:
            k = torch.as_tensor(k_init, dtype=torch.get_default_dtype()).expand(self.max_steps).clone()
        if learn_k:
            self.k = nn.Parameter(k)
        else:
            self.register_buffer("k", k)

    def init_state(self, x0, x_prev: Tensor | None = None):
        """State before step 0; ``x_prev`` (an iterate ``x_{-1}``) makes step 0 a two-step one."""
        return {"prev": x_prev}

    def step(self, f, x, state, n):
        prev = state.get("prev")
        if prev is None:
            x_next = x + f(x)
        else:
            k = self.k[min(int(n), self.max_steps - 1)].to(x.dtype)
            x_next = (1 - k) * x + k * prev + f(x)
        return x_next, {"prev": x}


class RK2(StepRule):
    """Two-stage Runge-Kutta: FractalNet read as a scheme (Lu et al. 2018, Table 1).

    ``variant="heun"`` (default): ``x + (f(x) + f(x + f(x))) / 2``, i.e. the mean join of a
    one-block path ``x + f(x)`` and a two-block path ``x + f(x + f(x))``, as FractalNet's join
    averages a shallow and a deep column. ``variant="midpoint"``: ``x + f(x + f(x) / 2)``.
    Both are of order 2.
    """

    name, order = "rk2", 2

    def __init__(self, max_steps: int = 32, variant: str = "heun"):
        super().__init__(max_steps)
        if variant not in ("heun", "midpoint"):
            raise ValueError(f"RK2 variant must be 'heun' or 'midpoint', got {variant!r}")
        self.variant = variant

    def step(self, f, x, state, n):
        k1 = f(x)
        if self.variant == "heun":
            return x + 0.5 * (k1 + f(x + k1)), state
        return x + f(x + 0.5 * k1), state

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, variant={self.variant!r}"


class PolyNet(StepRule):
    """PolyNet's second-order polynomial block ``x + f(x) + f(f(x))``.

    For a linear ``f`` this is ``(I + f + f^2) x``, the truncated Neumann series of the backward
    Euler step ``(I - f)^{-1} x``; like backward Euler it is of order 1.
    """

    name, order = "polynet", 1

    def step(self, f, x, state, n):
        fx = f(x)
        return x + fx + f(fx), state


class RevNet(StepRule):
    """RevNet's coupled forward Euler on two halves: invertible.

    With halves ``(x1, x2)``: ``x1' = x1 + f1(x2)``, then ``x2' = x2 + f2(x1')``. The inverse is
    ``x2 = x2' - f2(x1')``, ``x1 = x1' - f1(x2)``, so activations can be recomputed from the
    outputs (see :mod:`durr.schemes.revnet` for the memory-saving backward pass).

    How the halves are made (``split``):

    ``"duplicate"`` (default; the restoration unit): the state is a single image (B, 1, H, W),
        so the second half is an auxiliary copy ``a`` carried in the state and both halves use
        the same ``f``: ``x' = x + f(a)``, ``a' = a + f(x')``. ``aux_init="copy"`` starts with
        ``a_0 = x_0`` (step 0 is then a plain Euler step; order 1, the symplectic Euler
        method for the pair); ``aux_init="half"`` starts with ``a_0 = x_0 + f(x_0) / 2``, which
        makes ``a`` live at half steps: the staggered leapfrog (Stormer-Verlet), order 2.
    ``"channels"``: ``x`` (B, C, H, W) with ``C`` even is split into channel halves; ``f`` is a
        pair ``(f1, f2)`` of maps (B, C/2, H, W) -> (B, C/2, H, W), or one map used for both.
    """

    name, order = "revnet", 1

    def __init__(self, max_steps: int = 32, split: str = "duplicate", aux_init: str = "copy"):
        super().__init__(max_steps)
        if split not in ("duplicate", "channels"):
            raise ValueError(f"RevNet split must be 'duplicate' or 'channels', got {split!r}")
        if aux_init not in ("copy", "half"):
            raise ValueError(f"RevNet aux_init must be 'copy' or 'half', got {aux_init!r}")
        self.split, self.aux_init = split, aux_init
        self.order = 2 if (split == "duplicate" and aux_init == "half") else 1

    @staticmethod
    def _pair(f):
        return (f[0], f[1]) if isinstance(f, (tuple, list)) else (f, f)

    def init_state(self, x0, f: ResidualFn | None = None):
        """For ``split="duplicate"`` the state holds the auxiliary half ``a_0``.

        ``aux_init="half"`` needs ``f`` to form ``x0 + f(x0)/2``; without it the half step is
        taken lazily at step 0.
        """
        if self.split == "channels":
            return {}
        if self.aux_init == "half" and f is not None:
            return {"aux": x0 + 0.5 * self._pair(f)[0](x0)}
        return {"aux": x0 if self.aux_init == "copy" else None}

    def step(self, f, x, state, n):
        f1, f2 = self._pair(f)
        if self.split == "channels":
            if x.shape[1] % 2:
                raise ValueError(f"RevNet split='channels' needs an even channel count, got {x.shape[1]}")
            x1, x2 = x.chunk(2, dim=1)
            y1 = x1 + f1(x2)
            y2 = x2 + f2(y1)
            return torch.cat([y1, y2], dim=1), state
        aux = state.get("aux")
        if aux is None:  # aux_init == "half" without f at init time
            aux = x + 0.5 * f1(x)
        x_next = x + f1(aux)
        return x_next, {"aux": aux + f2(x_next)}

    def inverse(self, f, x_next: Tensor, state_next: State, n: int) -> tuple[Tensor, State]:
        """Undo :meth:`step`: from ``(x_{n+1}, state_{n+1})`` recover ``(x_n, state_n)``."""
        f1, f2 = self._pair(f)
        if self.split == "channels":
            y1, y2 = x_next.chunk(2, dim=1)
            x2 = y2 - f2(y1)
            x1 = y1 - f1(x2)
            return torch.cat([x1, x2], dim=1), state_next
        aux = state_next["aux"] - f2(x_next)
        return x_next - f1(aux), {"aux": aux}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, split={self.split!r}, aux_init={self.aux_init!r}"
