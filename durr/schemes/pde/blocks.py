"""PDE-Net blocks: the delta-t block (PDE-Net 1) and the symbolic-network block (PDE-Net 2.0).

Delta-t block (Long, Lu, Ma, Dong, ICML 2018), one forward Euler step of a learned linear PDE
with variable coefficients::

    u_{n+1} = u_n + dt * sum_alpha c_alpha(x, y) * D_alpha u_n

``D_alpha`` are moment-constrained convolutions (:class:`MomentBank`); ``c_alpha`` are
coefficient fields, either expanded in a low-order Fourier basis of the periodic domain
(``coefficients="fourier"``, a few numbers per term, which makes them identifiable) or free
per grid point (``"field"``). ``substeps`` splits ``dt`` into equal Euler sub-steps sharing the
operators.

Symbolic-network block (Long, Lu, Dong, J. Comput. Phys. 2019)::

    u_{n+1} = u_n + dt * SymNet(D_00 u, D_10 u, D_01 u, D_20 u, ...)

where ``SymNet`` is a stack of layers each appending the product of two learned affine
combinations of what came before; the learned right-hand side is a polynomial in the
derivatives that :meth:`SymNet.expression` expands and prunes into a readable formula.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from durr.schemes.pde.moments import MomentBank, derivative_orders

Tensor = torch.Tensor

__all__ = ["fourier_basis", "DeltaTBlock", "SymNet", "SymNetBlock", "order_name"]


def order_name(order: tuple[int, int]) -> str:
    """``(0, 0) -> "u"``, ``(1, 0) -> "u_x"``, ``(1, 2) -> "u_xyy"``."""
    i, j = order
    return "u" if i == j == 0 else "u_" + "x" * i + "y" * j


def fourier_basis(n: int, modes: int, length: float = 2 * math.pi, dtype=torch.float64) -> Tensor:
    """Tensor-product Fourier basis on the periodic ``n x n`` grid: ((2 modes + 1)^2, n, n).

    The functions are ``{1, cos(k w x), sin(k w x)}_{k<=modes}`` times the same in ``y``,
    ``w = 2 pi / L``, with ``x`` along columns.
    """
    s = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    one_d = [torch.ones_like(s)]
    for k in range(1, modes + 1):
        one_d += [torch.cos(k * s), torch.sin(k * s)]
    basis = [fy[:, None] * fx[None, :] for fy in one_d for fx in one_d]
    return torch.stack(basis).to(dtype)


class _TimeStepper(nn.Module):
    """A block advancing ``u`` by ``dt`` in ``substeps`` forward-Euler steps of ``self.rhs``."""

    dt: float
    substeps: int

    def rhs(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, u: Tensor) -> Tensor:
        h = self.dt / self.substeps
        for _ in range(self.substeps):
            u = u + h * self.rhs(u)
        return u

    def rollout(self, u0: Tensor, blocks: int) -> Tensor:
        """``blocks`` applications from ``u0`` (B, 1, n, n): (blocks + 1, B, 1, n, n)."""
        out = [u0]
        for _ in range(blocks):
            out.append(self(out[-1]))
        return torch.stack(out)


class DeltaTBlock(_TimeStepper):
    """PDE-Net 1 delta-t block with variable coefficients.

    Parameters
    ----------
    grid_size : int
        ``n`` of the ``n x n`` periodic grid (the coefficient fields live on it).
    dt : float
        Time step of one block.
    spacing : float
        Grid spacing ``h`` (``L / n``).
    max_order : int
        Operators ``D_ij`` for all ``i + j <= max_order`` (including ``D_00 = identity``).
    kernel_size, accuracy : int
        Of the moment-constrained filters (see :class:`MomentBank`).
    coefficients : {"fourier", "field"}
        Parameterisation of ``c_alpha(x, y)``.
    fourier_modes : int
        Highest frequency of the Fourier basis per axis.
    substeps : int
        Euler sub-steps per block.

    Shapes: ``forward`` (B, 1, n, n) -> (B, 1, n, n).
    """

    def __init__(self, grid_size: int, dt: float, spacing: float, max_order: int = 2, kernel_size: int = 5,
                 accuracy: int = 2, coefficients: str = "fourier", fourier_modes: int = 1, substeps: int = 1,
                 learn_moments: bool = True, dtype: torch.dtype = torch.float64):
        super().__init__()
        if coefficients not in ("fourier", "field"):
            raise ValueError(f"coefficients must be 'fourier' or 'field', got {coefficients!r}")
        self.dt, self.substeps, self.coefficients_kind = float(dt), int(substeps), coefficients
        self.orders = derivative_orders(max_order)
        self.bank = MomentBank(self.orders, kernel_size, accuracy, spacing, "circular", learn_moments, dtype)
        k = len(self.orders)
        if coefficients == "fourier":
            self.register_buffer("basis", fourier_basis(grid_size, fourier_modes, dtype=dtype))
            self.weights = nn.Parameter(torch.zeros(k, self.basis.shape[0], dtype=dtype))
        else:
            self.weights = nn.Parameter(torch.zeros(k, grid_size, grid_size, dtype=dtype))

    def coefficient_fields(self) -> Tensor:
        """The coefficient fields ``c_alpha(x, y)``: (K, n, n), in the order of ``self.orders``."""
        if self.coefficients_kind == "fourier":
            return torch.einsum("kb,bhw->khw", self.weights, self.basis)
        return self.weights

    def rhs(self, u: Tensor) -> Tensor:
        """The learned ``sum_alpha c_alpha D_alpha u``: (B, 1, n, n) -> (B, 1, n, n)."""
        d = self.bank(u)  # (B, K, n, n)
        return (self.coefficient_fields().unsqueeze(0) * d).sum(dim=1, keepdim=True)



class SymNet(nn.Module):
    """PDE-Net 2.0's symbolic network ``SymNet^k_m``: a polynomial of its ``m`` inputs.

    Layer ``l`` maps the features ``h`` (length ``m + l``) to ``(a, b) = W_l h + c_l`` and appends
    ``a * b``; the output is an affine combination of all ``m + k`` features. So ``k`` layers can
    represent polynomials of degree up to ``2^k``, and the terms can be read off exactly.

    Shapes: (..., m) -> (...).
    """

    def __init__(self, n_inputs: int, hidden_layers: int = 2, init_std: float = 0.1,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.n_inputs = int(n_inputs)
        self.layers = nn.ModuleList(nn.Linear(self.n_inputs + l, 2, dtype=dtype) for l in range(hidden_layers))
        self.out = nn.Linear(self.n_inputs + hidden_layers, 1, dtype=dtype)
        with torch.no_grad():
            for lin in list(self.layers) + [self.out]:
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=generator, dtype=dtype) * init_std)
                lin.bias.zero_()

    def forward(self, h: Tensor) -> Tensor:
        for lin in self.layers:
            ab = lin(h)  # (..., 2)
            h = torch.cat([h, ab[..., :1] * ab[..., 1:]], dim=-1)
        return self.out(h)[..., 0]

    def expression(self, names: Sequence[str], tol: float = 1e-3):
        """The learned polynomial as an expanded ``sympy`` expression, terms below ``tol`` dropped."""
        import sympy

        h = list(sympy.symbols(list(names)))
        if len(h) != self.n_inputs:
            raise ValueError(f"SymNet.expression: {len(h)} names for {self.n_inputs} inputs")

        def affine(lin, row):
            w = lin.weight.detach().double()[row].tolist()
            return sum(sympy.Float(c) * v for c, v in zip(w, h)) + sympy.Float(lin.bias.detach().double()[row].item())

        for lin in self.layers:
            h.append(sympy.expand(affine(lin, 0) * affine(lin, 1)))
        expr = sympy.expand(affine(self.out, 0))
        return sympy.Add(*[t for t in expr.as_ordered_terms() if abs(float(t.as_coeff_Mul()[0])) >= tol])

    def coefficients(self, names: Sequence[str], tol: float = 1e-3) -> dict[str, float]:
        """``{monomial: coefficient}`` of :meth:`expression`, e.g. ``{"u*u_x": -1.0, "u_xx": 0.15}``."""
        import sympy

        expr = self.expression(names, tol)
        poly = sympy.Poly(expr, *sympy.symbols(list(names)))
        out = {}
        for powers, coeff in zip(poly.monoms(), poly.coeffs()):
            term = "*".join(n if p == 1 else f"{n}**{p}" for n, p in zip(names, powers) if p) or "1"
            out[term] = float(coeff)
        return out


class SymNetBlock(_TimeStepper):
    """PDE-Net 2.0 block ``u_{n+1} = u_n + dt * SymNet(D_alpha u)`` on a periodic grid.

    Parameters as :class:`DeltaTBlock`; ``hidden_layers`` of the :class:`SymNet`. The SymNet
    inputs are all ``D_ij u`` with ``i + j <= max_order`` (``D_00 u = u``).

    Shapes: (B, 1, n, n) -> (B, 1, n, n).
    """

    def __init__(self, dt: float, spacing: float, max_order: int = 2, kernel_size: int = 5, accuracy: int = 2,
                 hidden_layers: int = 2, substeps: int = 1, learn_moments: bool = True,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.dt, self.substeps = float(dt), int(substeps)
        self.orders = derivative_orders(max_order)
        self.names = [order_name(o) for o in self.orders]
        self.bank = MomentBank(self.orders, kernel_size, accuracy, spacing, "circular", learn_moments, dtype)
        self.symnet = SymNet(len(self.orders), hidden_layers, generator=generator, dtype=dtype)

    def rhs(self, u: Tensor) -> Tensor:
        d = self.bank(u).permute(0, 2, 3, 1)  # (B, n, n, K)
        return self.symnet(d).unsqueeze(1)  # (B, 1, n, n)


    def expression(self, tol: float = 1e-3):
        """The learned right-hand side as a sympy expression in ``u, u_x, u_y, u_xx, ...``."""
        return self.symnet.expression(self.names, tol)
