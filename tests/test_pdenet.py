"""PDE-Net: moment transforms, frozen constraints, filter accuracy, solver, coefficient recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from durr.schemes.pde import (DeltaTBlock, MomentBank, PDERestorationUnit, SymNet, SymNetBlock, derivative_orders,
                              kernel_to_moments, moments_to_kernel)
from durr.schemes.pde.fit import ConvectionDiffusionTask, fit_delta_t, make_data
from durr.schemes.pde.simulate import fd_derivatives, periodic_grid, simulate


pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.mark.parametrize("size, tol", [(3, 1e-14), (5, 1e-13), (7, 1e-11)])
def test_moment_transforms_round_trip(size, tol):
    # float64 rounding only: the Vandermonde inverse is exact rationals rounded once; the
    # tolerance grows with cond(V)^2 (about 5^2, 33^2, 294^2)
    gen = torch.Generator().manual_seed(size)
    q = torch.randn(4, size, size, dtype=torch.float64, generator=gen)
    assert (moments_to_kernel(kernel_to_moments(q)) - q).abs().max() < tol
    m = torch.randn(4, size, size, dtype=torch.float64, generator=gen)
    assert (kernel_to_moments(moments_to_kernel(m)) - m).abs().max() < tol


def test_known_stencils():
    # 3x3 central differences: d/dx = [-1/2, 0, 1/2] along a row, d2/dx2 = [1, -2, 1]
    bank = MomentBank([(1, 0), (0, 1), (2, 0)], kernel_size=3, accuracy=2)
    q = bank.kernels().detach()
    assert torch.allclose(q[0, 1], torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64))
    assert torch.allclose(q[1, :, 1], torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64))
    assert torch.allclose(q[2, 1], torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64))
    # 5x5 with all free moments at 0: the 4th-order stencil (1, -8, 0, 8, -1) / 12
    q5 = MomentBank([(1, 0)], kernel_size=5).kernels().detach()[0, 2]
    assert torch.allclose(q5, torch.tensor([1.0, -8.0, 0.0, 8.0, -1.0], dtype=torch.float64) / 12)


def test_constraints_exact_after_optimizer_steps():
    torch.manual_seed(0)
    bank = MomentBank(derivative_orders(2), kernel_size=5, accuracy=2, padding_mode="circular")
    frozen = bank.frozen_mask
    assert int(frozen[derivative_orders(2).index((2, 0))].sum()) == 10  # a + b <= 3
    opt = torch.optim.AdamW(bank.parameters(), lr=0.1, weight_decay=0.5)
    u = torch.randn(2, 1, 12, 12)
    target = torch.randn(2, 6, 12, 12)
    for _ in range(5):
        opt.zero_grad()
        ((bank(u) - target) ** 2).mean().backward()
        opt.step()
        m = bank.moments()
        assert torch.equal(m[frozen], bank.frozen_values[frozen])  # bit-exact in the parameterisation
        measured = kernel_to_moments(bank.kernels().detach())  # and in the kernels actually used
        assert (measured[frozen] - bank.frozen_values[frozen]).abs().max() < 1e-12
    assert bank.free.detach()[~frozen].abs().max() > 0.1  # the free moments did move


def test_dx_filter_second_order_error_decay():
    gen = torch.Generator().manual_seed(1)
    bank = MomentBank([(1, 0)], kernel_size=5, accuracy=2, learnable=False)
    bank.free.copy_(torch.randn(bank.free.shape, generator=gen, dtype=bank.free.dtype))  # arbitrary free moments
    base_kernel = bank.kernels()
    sizes = [32, 64, 128, 256]  # n = 16 is still pre-asymptotic for O(1) free moments
    errors = []
    for n in sizes:
        x, y = periodic_grid(n)
        u = torch.sin(x + 0.5) * torch.cos(2 * y) + 0.3 * torch.cos(3 * x - y)
        du = torch.cos(x + 0.5) * torch.cos(2 * y) - 0.9 * torch.sin(3 * x - y)
        h = 2 * math.pi / n
        approx = torch.nn.functional.conv2d(torch.nn.functional.pad(u[None, None], (2, 2, 2, 2), mode="circular"),
                                            base_kernel[:, None]) / h
        errors.append(float((approx[0, 0] - du).abs().max()))
    slope = float(np.polyfit(np.log([2 * math.pi / n for n in sizes]), np.log(errors), 1)[0])
    assert abs(slope - 2) < 0.15, (errors, slope)


def test_fd_solver_matches_heat_decay():
    n = 32
    x, y = periodic_grid(n)
    d = fd_derivatives(torch.sin(2 * x) * torch.cos(y), 2 * math.pi / n)
    assert (d["u_x"] - 2 * torch.cos(2 * x) * torch.cos(y)).abs().max() < 2e-3
    u0 = (torch.sin(2 * x) * torch.cos(y)).unsqueeze(0)
    nu = 0.1

    def rhs(u):
        dd = fd_derivatives(u, 2 * math.pi / n)
        return nu * (dd["u_xx"] + dd["u_yy"])

    out = simulate(rhs, u0, 0.5, 2, 0.01)
    assert out.shape == (3, 1, n, n)
    exact = u0 * math.exp(-nu * 5 * 1.0)
    assert (out[-1] - exact).abs().max() < 1e-3


def test_coefficient_recovery_small():
    # a small version of `durr bench pdenet` (which reports the full-size figures)
    task = ConvectionDiffusionTask(n=24, refine=2, trajectories=4, test_trajectories=2, train_blocks=5, modes=2,
                                   solver_dt=0.005)
    data = make_data(task)
    block, result = fit_delta_t(task, data, substeps=4, one_step_iterations=40, trajectory_iterations=0)
    assert result["max_coefficient_rel_error"] < 0.05, result["coefficient_rel_error"]
    assert max(result["absent_terms_rel_to_nu"].values()) < 0.05
    rollout = result["rollout_rel_error"]
    assert len(rollout) == 4 * task.train_blocks + 1 and result["rollout_stable"]
    assert rollout[-1] < 0.02


def test_delta_t_block_shapes_and_field_mode():
    block = DeltaTBlock(8, 0.01, 0.5, coefficients="field", substeps=2)
    u = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    assert block(u).shape == u.shape and block.rollout(u, 4).shape == (5, 3, 1, 8, 8)
    assert torch.equal(block(u), u)  # zero coefficients: the identity map
    with pytest.raises(ValueError):
        DeltaTBlock(8, 0.01, 0.5, coefficients="spline")


def test_symnet_expression_reads_polynomial():
    net = SymNet(3, hidden_layers=1)
    with torch.no_grad():  # inputs (u, u_x, u_xx); one product u * u_x; output -u*u_x + 0.1 u_xx
        net.layers[0].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))
        net.layers[0].bias.zero_()
        net.out.weight.copy_(torch.tensor([[0.0, 0.0, 0.1, -1.0]]))
        net.out.bias.zero_()
    h = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(net(h), -h[:, 0] * h[:, 1] + 0.1 * h[:, 2])
    coeffs = net.coefficients(["u", "u_x", "u_xx"])
    assert coeffs == pytest.approx({"u*u_x": -1.0, "u_xx": 0.1})
    block = SymNetBlock(0.01, 0.5, hidden_layers=2)
    assert block(torch.randn(2, 1, 8, 8, dtype=torch.float64)).shape == (2, 1, 8, 8)
    assert block.names == ["u", "u_x", "u_y", "u_xx", "u_xy", "u_yy"]


def test_pde_restoration_unit():
    torch.manual_seed(0)
    unit = PDERestorationUnit(channels=8)
    clean = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 24, 24), 3, 1, 1)
    noisy = clean + 0.1 * torch.randn_like(clean)
    dx = unit(noisy, noisy)
    assert dx.shape == (4, 1, 24, 24)
    ops = unit.operators()
    assert set(ops) == {"u_x", "u_y", "u_xx", "u_xy", "u_yy"} and ops["u_xx"]["kernel"].shape == (5, 5)
    assert float(((noisy + dx.detach() - clean) ** 2).mean()) < float(((noisy - clean) ** 2).mean())  # smooths
    assert set(unit.fluxes(noisy, noisy)) == set(ops)
    many = PDERestorationUnit(channels=8, copies=2)
    assert many.names[:2] == ["u_x#0", "u_y#0"] and len(many.names) == 10
    opt = torch.optim.Adam(unit.parameters(), lr=3e-3)

    def loss_fn():
        x = noisy
        for _ in range(3):
            x = x + unit(x, noisy)
        return ((x - clean) ** 2).mean()

    first = float(loss_fn().detach())
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert float(loss_fn().detach()) < first
    frozen = unit.bank.frozen_mask
    assert torch.equal(unit.bank.moments()[frozen], unit.bank.frozen_values[frozen])
