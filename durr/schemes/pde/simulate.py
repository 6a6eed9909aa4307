"""A finite-difference solver for 2D evolution PDEs on a periodic square, to make training data.

Space: fourth-order central differences on a uniform periodic grid of ``n x n`` points over
``[0, L)^2`` (x along columns, y along rows). Time: classical RK4 with a fixed step. The data
for PDE-Net are simulated on a grid ``refine`` times finer than the one the network sees and
subsampled, so that the network's own discretisation is not the solver's.

Everything is float64 torch; fields are (B, n, n).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Tensor = torch.Tensor

__all__ = ["periodic_grid", "fd_derivatives", "convection_diffusion_rhs", "burgers_rhs", "simulate",
           "random_initial_condition"]


def periodic_grid(n: int, length: float = 2 * math.pi) -> tuple[Tensor, Tensor]:
    """Coordinates ``(x, y)``, each (n, n) float64, ``x[r, c] = c h``, ``y[r, c] = r h``, ``h = L / n``."""
    s = torch.arange(n, dtype=torch.float64) * (length / n)
    y, x = torch.meshgrid(s, s, indexing="ij")
    return x, y


def fd_derivatives(u: Tensor, h: float) -> dict[str, Tensor]:
    """Fourth-order periodic central differences of ``u`` (..., n, n): ``u_x, u_y, u_xx, u_yy, u_xy``."""
    def d1(v, dim):
        return (-torch.roll(v, -2, dim) + 8 * torch.roll(v, -1, dim) - 8 * torch.roll(v, 1, dim)
                + torch.roll(v, 2, dim)) / (12 * h)

    def d2(v, dim):
        return (-torch.roll(v, -2, dim) + 16 * torch.roll(v, -1, dim) - 30 * v + 16 * torch.roll(v, 1, dim)
                - torch.roll(v, 2, dim)) / (12 * h * h)

    ux, uy = d1(u, -1), d1(u, -2)
    return {"u_x": ux, "u_y": uy, "u_xx": d2(u, -1), "u_yy": d2(u, -2), "u_xy": d1(ux, -2)}


def convection_diffusion_rhs(a: Tensor, b: Tensor, nu_x: float | Tensor, nu_y: float | Tensor,
                             h: float) -> Callable[[Tensor], Tensor]:
    """``u_t = a(x,y) u_x + b(x,y) u_y + nu_x u_xx + nu_y u_yy`` (PDE-Net's sign convention)."""
    def rhs(u):
        d = fd_derivatives(u, h)
        return a * d["u_x"] + b * d["u_y"] + nu_x * d["u_xx"] + nu_y * d["u_yy"]
    return rhs


def burgers_rhs(nu: float, h: float, cx: float = -1.0, cy: float = -1.0) -> Callable[[Tensor], Tensor]:
    """A scalar viscous Burgers-type law ``u_t = cx u u_x + cy u u_y + nu (u_xx + u_yy)``."""
    def rhs(u):
        d = fd_derivatives(u, h)
        return cx * u * d["u_x"] + cy * u * d["u_y"] + nu * (d["u_xx"] + d["u_yy"])
    return rhs


def simulate(rhs: Callable[[Tensor], Tensor], u0: Tensor, dt_obs: float, n_obs: int, dt: float) -> Tensor:
    """Integrate ``u_t = rhs(u)`` with RK4 and return ``n_obs + 1`` snapshots spaced ``dt_obs``.

    Parameters
    ----------
    rhs : callable (B, n, n) -> (B, n, n)
    u0 : Tensor (B, n, n)
    dt_obs : float
        Time between snapshots.
    n_obs : int
        Number of intervals; the result has ``n_obs + 1`` snapshots, the first ``u0``.
    dt : float
        Largest RK4 step; it is shrunk so that it divides ``dt_obs``.

    Returns
    -------
    Tensor (n_obs + 1, B, n, n)
    """
    sub = max(1, math.ceil(dt_obs / dt - 1e-9))
    k = dt_obs / sub
    out = [u0]
    u = u0
    for _ in range(n_obs):
        for _ in range(sub):
            k1 = rhs(u)
            k2 = rhs(u + 0.5 * k * k1)
            k3 = rhs(u + 0.5 * k * k2)
            k4 = rhs(u + k * k3)
            u = u + (k / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        if not torch.isfinite(u).all():
            raise FloatingPointError("simulate: the solution blew up; reduce dt")
        out.append(u)
    return torch.stack(out)


def random_initial_condition(batch: int, n: int, modes: int = 3, length: float = 2 * math.pi,
                             generator: torch.Generator | None = None) -> Tensor:
    """Smooth random periodic fields (B, n, n): Fourier modes ``|k|, |l| <= modes``, amplitude
    ``1 / (1 + k^2 + l^2)``, normalised to unit standard deviation per field."""
    x, y = periodic_grid(n, length)
    w = 2 * math.pi / length
    u = torch.zeros(batch, n, n, dtype=torch.float64)
    for k in range(-modes, modes + 1):
        for l in range(0, modes + 1):
            if l == 0 and k <= 0:
                continue
            amp = 1.0 / (1.0 + k * k + l * l)
            c = torch.randn(batch, 2, dtype=torch.float64, generator=generator) * amp
            phase = w * (k * x + l * y)
            u = u + c[:, :1, None] * torch.cos(phase) + c[:, 1:, None] * torch.sin(phase)
    return u / u.flatten(1).std(dim=1).reshape(-1, 1, 1)
