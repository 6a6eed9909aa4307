"""Learning a known PDE from simulated data: the PDE-Net demonstration task.

The task: 2D convection-diffusion with variable coefficients on ``[0, 2 pi)^2`` (periodic),

    u_t = a(x, y) u_x + b(x, y) u_y + nu (u_xx + u_yy),
    a = 0.8 + 0.4 sin(x) cos(y),    b = -0.5 + 0.3 cos(x) + 0.2 sin(y),    nu = 0.15,

simulated by :mod:`durr.schemes.pde.simulate` (4th-order differences, RK4) on a grid ``refine``
times finer than the ``n x n`` grid the network sees, observed every ``dt``. A
:class:`DeltaTBlock` with all ``D_ij``, ``i + j <= 2`` is fitted to the observations (one-step
windows first, then multi-step windows), and judged by

* the relative L2 error of each recovered coefficient field that is not zero in the truth
  (``||c_hat - c|| / ||c||`` over the grid); terms absent from the truth are reported as
  ``||c_hat|| / ||nu||``;
* its rollout on new initial conditions for 4x the training horizon (relative L2 error to the
  simulated truth at every block).

Noise: ``noise = 0.01`` adds Gaussian noise of standard deviation 1% of the data's standard
deviation to every observation.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from durr.schemes.pde.blocks import DeltaTBlock, SymNetBlock, order_name
from durr.schemes.pde.moments import derivative_orders
from durr.schemes.pde.simulate import (burgers_rhs, convection_diffusion_rhs, periodic_grid,
                                       random_initial_condition, simulate)

Tensor = torch.Tensor

__all__ = ["ConvectionDiffusionTask", "true_coefficients", "make_data", "train_block", "fit_delta_t",
           "evaluate_delta_t", "fit_symnet_burgers"]


@dataclass
class ConvectionDiffusionTask:
    """Sizes of the convection-diffusion demonstration (defaults: the benchmark's)."""

    n: int = 32                 # grid the network sees
    refine: int = 2             # solver grid = refine * n
    dt: float = 0.02            # time between observations (one delta-t block)
    train_blocks: int = 10      # training horizon, in blocks
    trajectories: int = 12      # training initial conditions
    test_trajectories: int = 4  # held-out initial conditions for the rollout
    modes: int = 3              # highest Fourier mode of the initial conditions
    nu: float = 0.15
    noise: float = 0.0          # relative to the data's standard deviation
    solver_dt: float = 0.0025
    seed: int = 0


def true_coefficients(n: int, nu: float, length: float = 2 * math.pi) -> dict[tuple[int, int], Tensor]:
    """The coefficient fields of the task on the ``n x n`` grid, keyed by derivative order."""
    x, y = periodic_grid(n, length)
    fields = {o: torch.zeros(n, n, dtype=torch.float64) for o in derivative_orders(2)}
    fields[(1, 0)] = 0.8 + 0.4 * torch.sin(x) * torch.cos(y)
    fields[(0, 1)] = -0.5 + 0.3 * torch.cos(x) + 0.2 * torch.sin(y)
    fields[(2, 0)] = torch.full((n, n), float(nu), dtype=torch.float64)
    fields[(0, 2)] = torch.full((n, n), float(nu), dtype=torch.float64)
    return fields


def make_data(task: ConvectionDiffusionTask) -> dict:
    """Simulate the task: training series (T+1, B, 1, n, n) (noisy if asked) and test series over 4T."""
    g = torch.Generator().manual_seed(task.seed)
    fine = task.n * task.refine
    h_fine = 2 * math.pi / fine
    coeffs = true_coefficients(fine, task.nu)
    rhs = convection_diffusion_rhs(coeffs[(1, 0)], coeffs[(0, 1)], task.nu, task.nu, h_fine)
    u0 = random_initial_condition(task.trajectories + task.test_trajectories, fine, task.modes, generator=g)
    series = simulate(rhs, u0, task.dt, 4 * task.train_blocks, task.solver_dt)  # (4T+1, B, fine, fine)
    series = series[:, :, ::task.refine, ::task.refine].unsqueeze(2)  # (4T+1, B, 1, n, n)
    train_clean = series[: task.train_blocks + 1, : task.trajectories]
    train = train_clean
    if task.noise > 0:
        scale = task.noise * float(train_clean.std())
        train = train_clean + scale * torch.randn(train_clean.shape, generator=g, dtype=torch.float64)
    return {"train": train, "train_clean": train_clean, "test": series[:, task.trajectories:],
            "coefficients": true_coefficients(task.n, task.nu), "spacing": 2 * math.pi / task.n}


def _windows(series: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """All windows of ``window`` blocks: starts (W, 1, n, n) and targets (window, W, 1, n, n)."""
    t = series.shape[0] - window
    starts = series[:t].reshape(-1, *series.shape[2:])
    targets = torch.stack([series[k + 1: k + 1 + t].reshape(-1, *series.shape[2:]) for k in range(window)])
    return starts, targets


def train_block(block: torch.nn.Module, series: Tensor, window: int, iterations: int,
                moment_l1: float = 0.0, fit_initial: bool = False) -> list[float]:
    """Fit ``block`` to a series (T+1, B, 1, n, n) by L-BFGS.

    The loss is the mean squared error of all ``window``-block rollouts started from the
    observations, plus ``moment_l1`` times the L1 norm of the free moments. With
    ``fit_initial=True`` the rollouts instead start from learnable initial states (one per
    trajectory, initialised at the first observation) and span the whole series, the first
    observation included: noise in the observed starting state is then not pushed through
    the dynamics (where the fit would absorb it as extra damping).
    """
    if fit_initial:
        u0 = torch.nn.Parameter(series[0].clone())
        targets = series
        window = series.shape[0] - 1
        params = list(block.parameters()) + [u0]
    else:
        u0, targets = _windows(series, window)
        targets = torch.cat([u0.unsqueeze(0), targets])
        params = list(block.parameters())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=50,
                            tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
    history: list[float] = []
    norm = float(targets.var())

    def closure():
        opt.zero_grad()
        u = u0
        loss = ((u - targets[0]) ** 2).mean() if fit_initial else 0.0
        for k in range(window):
            u = block(u)
            loss = loss + ((u - targets[k + 1]) ** 2).mean()
        loss = loss / (window * norm)
        if moment_l1 > 0:
            loss = loss + moment_l1 * block.bank.free_moment_penalty()
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    opt.step(closure)
    return history


def fit_delta_t(task: ConvectionDiffusionTask, data: dict | None = None, *, substeps: int = 4,
                one_step_iterations: int = 60, trajectory_iterations: int = 200, kernel_size: int = 5,
                accuracy: int = 2, fourier_modes: int = 1, moment_l1: float = 0.0) -> tuple[DeltaTBlock, dict]:
    """Fit a :class:`DeltaTBlock` to the task's data; returns the block and its evaluation.

    Two L-BFGS stages: one-block windows from every observation (``one_step_iterations``),
    then whole-horizon rollouts from fitted initial states (``trajectory_iterations``; see
    :func:`train_block`). Either stage is skipped with 0 iterations.
    """
    data = make_data(task) if data is None else data
    torch.manual_seed(task.seed)
    block = DeltaTBlock(task.n, task.dt, data["spacing"], max_order=2, kernel_size=kernel_size,
                        accuracy=accuracy, coefficients="fourier", fourier_modes=fourier_modes, substeps=substeps)
    start = time.perf_counter()
    if one_step_iterations:
        train_block(block, data["train"], 1, one_step_iterations, moment_l1)
    if trajectory_iterations:
        train_block(block, data["train"], 0, trajectory_iterations, moment_l1, fit_initial=True)
    result = evaluate_delta_t(block, data, task)
    result["fit_seconds"] = time.perf_counter() - start
    return block, result


@torch.no_grad()
def evaluate_delta_t(block: DeltaTBlock, data: dict, task: ConvectionDiffusionTask) -> dict:
    """Coefficient errors and the 4x-horizon rollout of a fitted block (see the module doc)."""
    fields = block.coefficient_fields()
    truth = data["coefficients"]
    nu_norm = float(truth[(2, 0)].norm())
    coeff_err, spurious = {}, {}
    for k, order in enumerate(block.orders):
        c_true = truth[order]
        if float(c_true.norm()) > 0:
            coeff_err[order_name(order)] = float((fields[k] - c_true).norm() / c_true.norm())
        else:
            spurious[order_name(order)] = float(fields[k].norm()) / nu_norm
    test = data["test"]  # (4T+1, B, 1, n, n)
    pred = block.rollout(test[0], test.shape[0] - 1)
    rel = ((pred - test).flatten(2).norm(dim=2) / test.flatten(2).norm(dim=2)).mean(dim=1)  # (4T+1,)
    t = task.train_blocks
    return {
        "task": asdict(task),
        "coefficient_rel_error": coeff_err,
        "absent_terms_rel_to_nu": spurious,
        "max_coefficient_rel_error": max(coeff_err.values()),
        "rollout_rel_error": rel.tolist(),
        "rollout_error_at_T": float(rel[t]),
        "rollout_error_at_4T": float(rel[4 * t]),
        "rollout_stable": bool(torch.isfinite(pred).all()) and float(rel.max()) < 0.1,
    }


def fit_symnet_burgers(n: int = 32, refine: int = 2, dt: float = 0.01, blocks: int = 10, trajectories: int = 8,
                       nu: float = 0.15, seed: int = 0, hidden_layers: int = 2, iterations: int = 300,
                       substeps: int = 2) -> tuple[SymNetBlock, dict]:
    """Fit a :class:`SymNetBlock` to ``u_t = -u u_x - u u_y + nu (u_xx + u_yy)`` and read the PDE off.

    Returns the block and ``{"expression": str, "coefficients": {monomial: value}, "truth": ...}``.
    """
    g = torch.Generator().manual_seed(seed)
    fine = n * refine
    rhs = burgers_rhs(nu, 2 * math.pi / fine)
    u0 = 0.8 * random_initial_condition(trajectories, fine, 3, generator=g)
    series = simulate(rhs, u0, dt, blocks, 0.0025)[:, :, ::refine, ::refine].unsqueeze(2)
    torch.manual_seed(seed)
    block = SymNetBlock(dt, 2 * math.pi / n, max_order=2, hidden_layers=hidden_layers, substeps=substeps,
                        generator=g)
    start = time.perf_counter()
    for window in (1, 3):
        starts, targets = _windows(series, window)
        opt = torch.optim.LBFGS(block.parameters(), lr=1.0, max_iter=iterations, history_size=50,
                                tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
        norm = float(targets.var())

        def closure():
            opt.zero_grad()
            u, loss = starts, 0.0
            for k in range(window):
                u = block(u)
                loss = loss + ((u - targets[k]) ** 2).mean()
            loss = loss / (window * norm)
            loss.backward()
            return loss

        opt.step(closure)
    coeffs = block.symnet.coefficients(block.names, tol=1e-2)
    truth = {"u*u_x": -1.0, "u*u_y": -1.0, "u_xx": nu, "u_yy": nu}
    return block, {"expression": str(block.expression(tol=1e-2)), "coefficients": coeffs, "truth": truth,
                   "fit_seconds": time.perf_counter() - start}
