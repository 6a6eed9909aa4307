"""Convolutions parameterised by their moment matrix (PDE-Net, Long, Lu, Ma, Dong, ICML 2018).

For an ``N x N`` kernel ``q`` (``N`` odd) with offsets ``r`` (rows, the y axis) and ``c``
(columns, the x axis) in ``{-(N-1)/2, ..., (N-1)/2}``, the moment matrix is

    M[i, j] = 1 / (i! j!) * sum_{r, c} c^i r^j q[r, c],        0 <= i, j < N.

By Taylor expansion, applying ``q`` as a correlation (``torch``'s ``conv2d``) to a smooth ``u`` on
a grid of spacings ``(hx, hy)`` gives ``sum_{i,j} M[i, j] hx^i hy^j d^{i+j} u / dx^i dy^j``. So
``M[i, j]`` is the weight of ``d_x^i d_y^j`` (PDE-Net's ``D_ij``): fixing ``M[order] = 1`` and
``M[i, j] = 0`` for the other ``i + j <= |order| + accuracy - 1`` makes ``q / (hx^i hy^j)`` a
consistent approximation of that derivative with error ``O(h^accuracy)``; the remaining moments
are free to learn.

In matrix form ``M = V q^T V^T`` with ``V[i, c] = c^i / i!``, a Vandermonde matrix; its inverse
is computed exactly in rational arithmetic (:class:`fractions.Fraction`) and rounded once to
float64, so the kernel <-> moment transforms are exact to float64 rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor

__all__ = ["moment_matrix_basis", "kernel_to_moments", "moments_to_kernel", "derivative_orders", "MomentBank"]


@lru_cache(maxsize=None)
def _exact_basis(size: int) -> tuple[tuple[tuple[Fraction, ...], ...], tuple[tuple[Fraction, ...], ...]]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"moment kernels need an odd size, got {size}")
    half = size // 2
    offsets = range(-half, half + 1)
    v = [[Fraction(c) ** i / math.factorial(i) for c in offsets] for i in range(size)]
    # Gauss-Jordan elimination in exact arithmetic
    aug = [row[:] + [Fraction(int(i == k)) for k in range(size)] for i, row in enumerate(v)]
    for col in range(size):
        pivot = next(r for r in range(col, size) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        piv = aug[col][col]
        aug[col] = [a / piv for a in aug[col]]
        for r in range(size):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col]
                aug[r] = [a - factor * b for a, b in zip(aug[r], aug[col])]
    inv = [row[size:] for row in aug]
    return tuple(tuple(r) for r in v), tuple(tuple(r) for r in inv)


def moment_matrix_basis(size: int) -> tuple[Tensor, Tensor]:
    """``(V, V^{-1})`` in float64 for ``size x size`` kernels, ``V[i, c] = c^i / i!``."""
    v, inv = _exact_basis(int(size))
    return (torch.tensor([[float(a) for a in r] for r in v], dtype=torch.float64),
            torch.tensor([[float(a) for a in r] for r in inv], dtype=torch.float64))


def kernel_to_moments(kernel: Tensor) -> Tensor:
    """Moment matrices of kernels (..., N, N) (rows y, columns x), computed in float64."""
    v, _ = moment_matrix_basis(kernel.shape[-1])
    q = kernel.to(torch.float64)
    return v @ q.transpose(-1, -2) @ v.T


def moments_to_kernel(moments: Tensor) -> Tensor:
    """Kernels (..., N, N) from moment matrices (..., N, N), computed in float64."""
    _, inv = moment_matrix_basis(moments.shape[-1])
    m = moments.to(torch.float64)
    return (inv @ m @ inv.T).transpose(-1, -2)


def derivative_orders(max_order: int, include_zero: bool = True) -> list[tuple[int, int]]:
    """All ``(i, j)`` with ``i + j <= max_order``, by total order: (0,0), (1,0), (0,1), (2,0), ..."""
    out = [(t - j, j) for t in range(max_order + 1) for j in range(t + 1)]
    return out if include_zero else out[1:]


class MomentBank(nn.Module):
    """A bank of moment-constrained differential operators ``D_ij``, applied in one convolution.

    Parameters
    ----------
    orders : sequence of (i, j)
        Derivative orders ``d_x^i d_y^j`` of the operators (x = columns, y = rows).
    kernel_size : int
        Odd kernel size ``N``; each ``i, j`` must be ``< N``.
    accuracy : int
        Order of accuracy: the moments with ``a + b <= i + j + accuracy - 1`` are frozen
        (``M[i, j] = 1``, the others 0); the rest are learnable, initialised at 0 (which gives
        the most accurate stencil the kernel size allows).
    spacing : float or (hx, hy)
        Grid spacing; operator ``(i, j)`` is divided by ``hx^i hy^j``.
    padding_mode : str
        ``"circular"`` (periodic PDEs), ``"reflect"`` or ``"replicate"`` (images).
    learnable : bool
        If False the free moments are fixed buffers too.

    Notes
    -----
    The frozen moments are a buffer combined with the free ones by ``torch.where``, so they
    hold exactly after any optimiser step (weight decay included). Kernels are formed from
    the moments in float64 and cast to the input's dtype.

    Shapes: ``forward`` (B, 1, H, W) -> (B, K, H, W), ``K = len(orders)``.

    Examples
    --------
    >>> bank = MomentBank([(1, 0)], kernel_size=3, accuracy=2)
    >>> bank.kernels().detach()[0]  # central difference d/dx
    tensor([[ 0.0000,  0.0000,  0.0000],
            [-0.5000,  0.0000,  0.5000],
            [ 0.0000,  0.0000,  0.0000]], dtype=torch.float64)
    """

    def __init__(self, orders: Sequence[tuple[int, int]], kernel_size: int = 5, accuracy: int = 2,
                 spacing: float | tuple[float, float] = 1.0, padding_mode: str = "circular",
                 learnable: bool = True, dtype: torch.dtype | None = None):
        super().__init__()
        n = int(kernel_size)
        moment_matrix_basis(n)  # validates the size
        self.orders = [tuple(int(v) for v in o) for o in orders]
        if not self.orders:
            raise ValueError("MomentBank needs at least one derivative order")
        if padding_mode not in ("circular", "reflect", "replicate", "zeros"):
            raise ValueError(f"unknown padding_mode {padding_mode!r}")
        self.kernel_size, self.accuracy, self.padding_mode = n, int(accuracy), padding_mode
        hx, hy = (spacing, spacing) if isinstance(spacing, (int, float)) else spacing
        self.spacing = (float(hx), float(hy))
        mask = torch.zeros(len(self.orders), n, n, dtype=torch.bool)
        target = torch.zeros(len(self.orders), n, n, dtype=torch.float64)
        a = torch.arange(n).reshape(n, 1)
        b = torch.arange(n).reshape(1, n)
        for k, (i, j) in enumerate(self.orders):
            if i >= n or j >= n or i < 0 or j < 0:
                raise ValueError(f"derivative order {(i, j)} does not fit a {n}x{n} kernel")
            mask[k] = (a + b) <= (i + j + self.accuracy - 1)
            mask[k, i, j] = True
            target[k, i, j] = 1.0
        self.register_buffer("frozen_mask", mask)
        self.register_buffer("frozen_values", target)
        free = torch.zeros(len(self.orders), n, n, dtype=dtype or torch.get_default_dtype())
        if learnable:
            self.free = nn.Parameter(free)
        else:
            self.register_buffer("free", free)
        _, inv = moment_matrix_basis(n)
        self.register_buffer("_vinv", inv, persistent=False)
        scale = torch.tensor([1.0 / (self.spacing[0] ** i * self.spacing[1] ** j) for i, j in self.orders],
                             dtype=torch.float64)
        self.register_buffer("_scale", scale.reshape(-1, 1, 1), persistent=False)

    def moments(self) -> Tensor:
        """Moment matrices (K, N, N) in float64; frozen entries exactly their targets."""
        return torch.where(self.frozen_mask, self.frozen_values, self.free.to(torch.float64))

    def kernels(self) -> Tensor:
        """Kernels (K, N, N) in float64, already divided by ``hx^i hy^j``."""
        m = self.moments()
        q = (self._vinv @ m @ self._vinv.T).transpose(-1, -2)
        return q * self._scale

    def forward(self, u: Tensor) -> Tensor:
        weight = self.kernels().to(u.dtype).unsqueeze(1)  # (K, 1, N, N)
        p = self.kernel_size // 2
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.conv2d(F.pad(u, (p, p, p, p), mode=mode), weight)

    def free_moment_penalty(self) -> Tensor:
        """L1 norm of the learnable moments (PDE-Net 2.0's sparsity regulariser on moments)."""
        return torch.where(self.frozen_mask, torch.zeros_like(self.free), self.free).abs().sum()

    def extra_repr(self) -> str:
        return (f"orders={self.orders}, kernel_size={self.kernel_size}, accuracy={self.accuracy}, "
                f"spacing={self.spacing}, padding_mode={self.padding_mode!r}")

