"""Step rules: registry, convergence orders on a linear ODE, RevNet inverse/gradients/memory.

The reference for the convergence tests is the exact solution ``expm(T A) x0`` of ``x' = A x``
(``torch.linalg.matrix_exp`` in float64); the residual function is ``f(x) = h A x``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from durr.schemes import (LM, ReversibleSequence, StochasticDepth, build_backbone, make_rule, peak_memory_bytes,
                          rule_names, saved_tensor_bytes, unroll)

pytestmark = pytest.mark.usefixtures("one_thread")

A = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=torch.float64)
X0 = torch.tensor([1.0, 0.5], dtype=torch.float64).reshape(1, 2, 1, 1)
STEPS = [16, 32, 64, 128]


def _linear(h, matrix=A):
    return lambda x: h * torch.einsum("ij,bjhw->bihw", matrix, x)


def _exact(t, matrix=A):
    return (torch.linalg.matrix_exp(t * matrix) @ X0.reshape(2)).reshape(1, 2, 1, 1)


def _slope(errors):
    return float(np.polyfit(np.log(1.0 / np.array(STEPS)), np.log(errors), 1)[0])


def test_registry_names_and_unknown():
    assert rule_names() == ["euler", "lm", "polynet", "revnet", "rk2"]
    with pytest.raises(ValueError, match="euler, lm, polynet, revnet, rk2"):
        make_rule("adams")
    with pytest.raises(ValueError):
        make_rule("rk2", variant="rk4")


@pytest.mark.parametrize("name, kwargs, order", [
    ("euler", {}, 1), ("rk2", {}, 2), ("rk2", {"variant": "midpoint"}, 2), ("polynet", {}, 1),
    ("revnet", {}, 1), ("revnet", {"aux_init": "half"}, 2),
])
def test_convergence_order(name, kwargs, order):
    errors = []
    for n in STEPS:
        rule = make_rule(name, max_steps=n, **kwargs)
        assert rule.order == order
        x = rule.rollout(_linear(1.0 / n), X0, n)
        errors.append(float((x - _exact(1.0)).norm()))
    assert abs(_slope(errors) - order) < 0.15, errors


@pytest.mark.parametrize("k", [-0.5, -0.05, 0.3])
def test_lm_fixed_k_first_order(k):
    # consistent with (1 + k) x' = A x: the reference is expm(T A / (1 + k)) x0
    errors = []
    for n in STEPS:
        rule = make_rule("lm", max_steps=n, k_init=k, learn_k=False)
        x = rule.rollout(_linear(1.0 / n), X0, n)
        errors.append(float((x - _exact(1.0, A / (1 + k))).norm()))
    assert abs(_slope(errors) - 1) < 0.15, errors


def test_lm_leapfrog_second_order():
    # k = 1: x_{n+1} = x_{n-1} + h A x_n, the midpoint rule for x' = A x / 2, started exactly
    rot = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    errors = []
    for n in STEPS:
        h = 1.0 / n
        rule = make_rule("lm", max_steps=n, k_init=1.0, learn_k=False)
        x1 = _exact(h, rot / 2)
        state = rule.init_state(x1, x_prev=X0)
        x = x1
        for i in range(1, n):
            x, state = rule.step(_linear(h, rot), x, state, i)
        errors.append(float((x - _exact(1.0, rot / 2)).norm()))
    assert abs(_slope(errors) - 2) < 0.15, errors


def test_lm_parameters():
    rule = make_rule("lm", max_steps=32, generator=torch.Generator().manual_seed(0))
    assert isinstance(rule, LM) and isinstance(rule.k, torch.nn.Parameter) and rule.k.shape == (32,)
    assert bool(((rule.k > -0.1) & (rule.k <= 0)).all())
    x = torch.randn(2, 1, 8, 8)
    state = rule.init_state(x)
    f = lambda z: 0.1 * z  # noqa: E731
    x1, state = rule.step(f, x, state, 0)
    assert torch.allclose(x1, x + f(x))  # step 0 is plain Euler
    x2, _ = rule.step(f, x1, state, 1)
    k = rule.k[1]
    assert torch.allclose(x2, (1 - k) * x1 + k * x + f(x1))
    x2.sum().backward()
    assert rule.k.grad is not None and rule.k.grad[1] != 0 and rule.k.grad[0] == 0


def test_unroll_and_shapes():
    x = torch.randn(2, 1, 8, 8)
    for name in rule_names():
        out = unroll(lambda z: -0.1 * z, x, 5, method=name, return_all=True)
        assert len(out) == 6 and all(o.shape == x.shape for o in out)


def test_revnet_step_inverse():
    torch.manual_seed(0)
    f = torch.nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        f.weight.mul_(0.3)  # an update of the size a restoration step makes
    rule = make_rule("revnet")
    x = torch.randn(2, 1, 8, 8)
    states, xs = [rule.init_state(x)], [x]
    for n in range(6):
        x, s = rule.step(f, x, states[-1], n)
        xs.append(x)
        states.append(s)
    with torch.no_grad():
        for n in reversed(range(6)):
            x, s = rule.inverse(f, x, s, n)
            assert (x - xs[n]).abs().max() < 1e-5


def _revnet_pair(depth=10):
    torch.manual_seed(0)
    net = build_backbone("revnet", channels=16, depth=depth, num_classes=10, gain=1.0)
    ref = copy.deepcopy(net)
    ref.branches.memory_saving = False
    return net, ref


def test_revnet_backbone_inverse_gradients_memory():
    net, ref = _revnet_pair()
    x = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        z = net.stem(x)
        assert (net.branches.inverse(net.branches(z)) - z).abs().max() < 1e-5
    grads = []
    for model in (net, ref):
        model.zero_grad()
        model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for g_mem, g_ref in zip(*grads):
        assert (g_mem - g_ref).abs().max() < 1e-5
    # memory, two ways: bytes autograd keeps for backward, and the profiler's allocation peak
    saved_mem = saved_tensor_bytes(lambda: net(x), list(net.parameters()))
    saved_ref = saved_tensor_bytes(lambda: ref(x), list(ref.parameters()))
    assert saved_mem < saved_ref / 4, (saved_mem, saved_ref)
    peak = [peak_memory_bytes(lambda m=m: m(x).square().mean().backward()) for m in (net, ref)]
    assert 0 < peak[0] < peak[1], peak


def test_reversible_sequence_input_gradient():
    net, ref = _revnet_pair(depth=4)
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    net.branches(x).sum().backward()
    ref.branches(x_ref).sum().backward()
    assert isinstance(net.branches, ReversibleSequence)
    assert (x.grad - x_ref.grad).abs().max() < 1e-5


def test_stochastic_depth_train_and_eval():
    rule = make_rule("euler", max_steps=4, stochastic_depth=0.5)
    assert isinstance(rule, StochasticDepth)
    assert [rule.survival(n) for n in range(4)] == [0.875, 0.75, 0.625, 0.5]
    x = torch.zeros(4000, 1, 1, 1)
    rule.train()
    x1, _ = rule.step(lambda z: z + 1.0, x, rule.init_state(x), 3)
    assert set(x1.unique().tolist()) <= {0.0, 1.0} and abs(float(x1.mean()) - 0.5) < 0.05
    rule.eval()
    x1, _ = rule.step(lambda z: z + 1.0, x, rule.init_state(x), 1)
    assert torch.allclose(x1, torch.full_like(x, 0.75))
    for name in ("lm", "rk2", "polynet", "revnet"):  # usable with any rule
        r = make_rule(name, max_steps=4, stochastic_depth=0.8).eval()
        out = r.rollout(lambda z: -0.1 * z, torch.ones(1, 1, 4, 4), 4)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["euler", "lm", "rk2", "polynet", "revnet"])
def test_backbones_train_a_step(name):
    torch.manual_seed(0)
    clf = build_backbone(name, channels=8, depth=3, num_classes=10)
    reg = build_backbone(name, channels=8, depth=3, out_channels=1, in_channels=2)
    x = torch.randn(4, 1, 8, 8)
    assert clf(x).shape == (4, 10)
    assert reg(torch.randn(4, 2, 8, 8)).shape == (4, 1, 8, 8)
    opt = torch.optim.SGD(clf.parameters(), lr=0.1)
    y = torch.randint(0, 10, (4,))
    loss0 = torch.nn.functional.cross_entropy(clf(x), y)
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(clf(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < loss0.item()


def test_bench_command_convergence_part(capsys):
    import argparse

    from durr.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["schemes", "--parts", "convergence"])) == 0
    out = capsys.readouterr().out
    assert "| rk2 | 2 |" in out and "slope" in out
