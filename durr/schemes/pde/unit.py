"""A PDE-Net restoration unit for DURR: a learned nonlinear diffusion with readable operators.

One step of the restorer is ``x_{n+1} = x_n + F(x_n, y)`` with

    F(x, y) = dt * ( sum_k D_k^T phi_k(D x)  +  lambda * (y - x) ),

* ``D = (D_1, ..., D_K)``: moment-constrained differential operators (:class:`MomentBank`,
  reflect padding, unit pixel spacing), by default ``d_x, d_y, d_xx, d_xy, d_yy``; their moment
  matrices and kernels are read off with :meth:`PDERestorationUnit.operators`;
* ``phi``: a learned pointwise *influence function* ``R^K -> R^K`` (a linear map plus a small
  per-pixel MLP, i.e. 1x1 convolutions), applied to the derivatives at each pixel;
* ``D_k^T``: the adjoint (transposed convolution) of ``D_k``, with the sign that makes
  ``-D_x^T = d_x``; so for ``phi(s) = -c s`` the step is ``c (u_xx + u_yy)`` plus ``-c`` times
  the bi-Laplacian-type terms of the second-order operators;
* ``lambda``: a learned fidelity weight.

This is the divergence form of nonlinear diffusion: with first-order operators only and
``phi(g) = -g(|g|) g`` it is Perona-Malik, ``u_t = div(g(|grad u|) grad u)``; in general it is a
gradient step on a learned energy ``sum_k rho_k(D_k x)`` (TNRD, Chen and Pock 2017), with the
operators constrained to be derivatives of known order (PDE-Net). :meth:`influence` evaluates
``phi`` on given derivative values, for plotting.

At initialisation ``phi(s) = -c_k s`` with ``c_k = init_diffusion`` for first-order operators and
``init_diffusion / 20`` for second-order ones (whose terms are fourth order, far stiffer): the
unit starts as a small, stable smoothing step, not as the identity.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from durr.schemes.pde.blocks import order_name
from durr.schemes.pde.moments import MomentBank

Tensor = torch.Tensor

__all__ = ["PDERestorationUnit"]

DEFAULT_ORDERS = ((1, 0), (0, 1), (2, 0), (1, 1), (0, 2))


class PDERestorationUnit(nn.Module):
    """``F(x, y)`` as a learned nonlinear diffusion, usable as the residual of the DURR restorer.

    Parameters
    ----------
    channels : int
        Hidden width of the pointwise influence MLP.
    orders : sequence of (i, j)
        Derivative orders of the operators (x = columns, y = rows).
    copies : int
        Operators per order: copy 0 starts as the most accurate stencil, the others with random
        free moments (``free_init_std``), so that the bank holds several different
        approximations of each derivative (e.g. differently oriented or scaled), as TNRD's many
        filters do. Names are ``"u_x#0"``, ``"u_x#1"``, ...
    kernel_size : int
        Odd size of the moment-constrained filters.
    accuracy : int
        Order of accuracy the frozen moments impose (see :class:`MomentBank`).
    dt : float
        Time step of one restoration step.
    init_diffusion : float
        Initial linear diffusion coefficient ``c`` (``phi(s) = -c s``).

    Shapes: ``forward(x, y)``: (B, 1, H, W), (B, 1, H, W) -> (B, 1, H, W).

    Examples
    --------
    >>> unit = PDERestorationUnit(channels=8)
    >>> x = torch.rand(2, 1, 16, 16)
    >>> unit(x, x).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, channels: int = 16, orders: Sequence[tuple[int, int]] = DEFAULT_ORDERS,
                 kernel_size: int = 5, accuracy: int = 1, dt: float = 1.0, init_diffusion: float = 0.02,
                 copies: int = 1, free_init_std: float = 0.05):
        super().__init__()
        self.orders = [tuple(o) for o in orders] * int(copies)
        self.names = [order_name(o) + (f"#{c}" if copies > 1 else "")
                      for c in range(int(copies)) for o in orders]
        self.dt = float(dt)
        self.bank = MomentBank(self.orders, kernel_size, accuracy, 1.0, "reflect")
        k = len(self.orders)
        with torch.no_grad():  # copies start as different filters of the same derivative order
            n_ops = len(orders)
            self.bank.free[n_ops:].normal_(0.0, free_init_std)
        self.linear = nn.Conv2d(k, k, 1, bias=False)
        pad = {"padding": 1, "padding_mode": "reflect"}
        self.mlp = nn.Sequential(nn.Conv2d(k + 1, channels, 3, **pad), nn.ReLU(),
                                 nn.Conv2d(channels, channels, 3, **pad), nn.ReLU(), nn.Conv2d(channels, k, 1))
        self.fidelity = nn.Parameter(torch.zeros(()))
        with torch.no_grad():
            # second-order operators give fourth-order (much stiffer) terms: start them 20x weaker
            scale = torch.tensor([1.0 if sum(o) <= 1 else 0.05 for o in self.orders])
            self.linear.weight.copy_(-init_diffusion * torch.diag(scale).reshape(k, k, 1, 1))
            self.mlp[-1].weight.mul_(0.1)
            self.mlp[-1].bias.zero_()

    def influence(self, d: Tensor, residual: Tensor | None = None) -> Tensor:
        """``phi``: derivatives (B, K, H, W) (and ``y - x``, (B, 1, H, W)) -> fluxes (B, K, H, W)."""
        residual = torch.zeros_like(d[:, :1]) if residual is None else residual
        return self.linear(d) + self.mlp(torch.cat([d, residual], dim=1))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        d = self.bank(x)  # (B, K, H, W): D_k x
        flux = self.influence(d, y - x)  # (B, K, H, W)
        weight = self.bank.kernels().to(x.dtype).unsqueeze(1)  # (K, 1, N, N)
        p = self.bank.kernel_size // 2
        div = F.conv_transpose2d(flux, weight, padding=p)  # (B, 1, H, W): sum_k D_k^T flux_k
        return self.dt * (div + self.fidelity * (y - x))

    @torch.no_grad()
    def operators(self) -> dict[str, dict[str, Tensor]]:
        """``{"u_xx": {"moments": (N, N), "kernel": (N, N)}, ...}`` (float64)."""
        m, q = self.bank.moments(), self.bank.kernels()
        return {name: {"moments": m[i], "kernel": q[i]} for i, name in enumerate(self.names)}

    @torch.no_grad()
    def fluxes(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """The per-operator fluxes ``phi_k(D x)`` at ``(x, y)``: ``{"u_x": (B, 1, H, W), ...}``."""
        flux = self.influence(self.bank(x), y - x)
        return {name: flux[:, i: i + 1] for i, name in enumerate(self.names)}
