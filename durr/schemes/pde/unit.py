"""A PDE-Net restoration unit for DURR: a learned nonlinear diffusion with readable operators.

One step of the restorer is ``x_{n+1} = x_n + F(x_n, y)`` with

    F(x, y) = dt * ( sum_alpha c_alpha(x, y) * D_alpha x  +  c_fid(x, y) * (y - x) ),

* ``D_alpha``: moment-constrained differential operators (:class:`MomentBank`, reflect padding,
  unit pixel spacing), by default ``d_x, d_y, d_xx, d_xy, d_yy``; their moment matrices are
  read off with :meth:`PDERestorationUnit.operators`;
* ``c_alpha`` and ``c_fid``: coefficient maps computed pointwise-locally by a small CNN from
  ``x``, ``y`` and the derivatives ``D_alpha x`` (so the diffusion depends on the local gradient,
  as in Perona-Malik), read off with :meth:`PDERestorationUnit.coefficients`.

At initialisation the coefficients are ``c_xx = c_yy = init_diffusion`` and 0 otherwise: the
unit starts as a small step of the heat equation (smoothing), not as the identity.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from durr.schemes.pde.blocks import order_name
from durr.schemes.pde.moments import MomentBank

Tensor = torch.Tensor

__all__ = ["PDERestorationUnit"]

DEFAULT_ORDERS = ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2))


class PDERestorationUnit(nn.Module):
    """``F(x, y)`` as a learned PDE, usable as the residual of the DURR restorer.

    Parameters
    ----------
    channels : int
        Width of the coefficient CNN.
    orders : sequence of (i, j)
        Derivative orders of the operators (x = columns, y = rows).
    kernel_size : int
        Odd size of the moment-constrained filters.
    accuracy : int
        Order of accuracy the frozen moments impose (see :class:`MomentBank`).
    dt : float
        Time step of one restoration step.
    init_diffusion : float
        Initial ``c_xx = c_yy``.

    Shapes: ``forward(x, y)``: (B, 1, H, W), (B, 1, H, W) -> (B, 1, H, W).

    Examples
    --------
    >>> unit = PDERestorationUnit(channels=8)
    >>> x = torch.rand(2, 1, 16, 16)
    >>> unit(x, x).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, channels: int = 16, orders: Sequence[tuple[int, int]] = DEFAULT_ORDERS,
                 kernel_size: int = 5, accuracy: int = 1, dt: float = 0.5, init_diffusion: float = 0.1):
        super().__init__()
        self.orders = [tuple(o) for o in orders]
        self.names = [order_name(o) for o in self.orders]
        self.dt = float(dt)
        self.bank = MomentBank(self.orders, kernel_size, accuracy, 1.0, "reflect")
        k = len(self.orders)
        self.coef = nn.Sequential(
            nn.Conv2d(2 + k, channels, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            nn.Conv2d(channels, channels, 1), nn.ReLU(),
            nn.Conv2d(channels, k + 1, 1),
        )
        with torch.no_grad():
            last = self.coef[-1]
            last.weight.mul_(0.01)
            last.bias.zero_()
            for idx, order in enumerate(self.orders):
                if order in ((2, 0), (0, 2)):
                    last.bias[idx] = init_diffusion

    def _parts(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        d = self.bank(x)  # (B, K, H, W): D_alpha x
        c = self.coef(torch.cat([x, y, d], dim=1))  # (B, K + 1, H, W)
        return d, c

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        d, c = self._parts(x, y)
        k = d.shape[1]
        return self.dt * ((c[:, :k] * d).sum(dim=1, keepdim=True) + c[:, k:] * (y - x))

    @torch.no_grad()
    def coefficients(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The coefficient maps at ``(x, y)``: ``{"u_x": (B, 1, H, W), ..., "fidelity": ...}``."""
        _, c = self._parts(x, y)
        out = {name: c[:, i: i + 1] for i, name in enumerate(self.names)}
        out["fidelity"] = c[:, len(self.names):]
        return out

    @torch.no_grad()
    def operators(self) -> dict[str, dict[str, Tensor]]:
        """``{"u_xx": {"moments": (N, N), "kernel": (N, N)}, ...}`` (float64)."""
        m, q = self.bank.moments(), self.bank.kernels()
        return {name: {"moments": m[i], "kernel": q[i]} for i, name in enumerate(self.names)}
