"""YOPO-m-n: adversarial training via the maximum principle (Zhang, Zhang, Lu, Zhu, Dong, NeurIPS 2019).

Write the network as ``g(f0(x + eta, theta0), theta~)``: a first layer ``f0`` and the rest ``g``.
Adversarial training is a differential game; in Pontryagin's maximum principle for it, the
perturbation ``eta`` is coupled only with the first layer, through the Hamiltonian of layer 0,

    H0(eta, theta0; p) = < p, f0(x + eta, theta0) >,

where ``p`` is the adjoint (the loss gradient) at the first layer's output. YOPO-m-n exploits it:

for each minibatch, ``eta`` starts uniform in the ball, then ``m`` times:

1. one full forward and backward pass at ``x + eta``: the gradients of ``g``'s weights are
   accumulated, and the adjoint ``p = dloss / d f0`` is taken and then frozen;
2. ``eta`` is updated ``n`` times by signed ascent on ``H0`` -- through the first layer only;
3. the first layer's weight gradient is accumulated from the Hamiltonian,
   ``d H0(eta, theta0; p) / d theta0`` at the updated ``eta``.

One optimiser step then uses the gradients averaged over the ``m`` passes. A PGD-k step costs
``k + 1`` full forward/backward passes; YOPO-m-n costs ``m`` full passes and ``m (n + 1)`` passes
through the first layer alone.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

Tensor = torch.Tensor

__all__ = ["yopo_step"]


def yopo_step(first_layer: nn.Module, rest: Callable[[Tensor], Tensor], optimizer: torch.optim.Optimizer,
              x: Tensor, y: Tensor, eps: float, step: float, m: int = 5, n: int = 3,
              loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
              clamp: tuple[float, float] | None = (0.0, 1.0), generator: torch.Generator | None = None) -> float:
    """One YOPO-m-n training step on a minibatch; returns the mean loss of the ``m`` passes.

    Parameters
    ----------
    first_layer : nn.Module
        ``f0``: input (B, ...) -> first features.
    rest : callable
        ``g``: first features -> model output (its parameters are in ``optimizer``).
    optimizer : torch.optim.Optimizer
        Over the parameters of both ``first_layer`` and ``rest``.
    x, y : Tensor
        Inputs (B, ...) and targets.
    eps, step : float
        L-infinity radius and the step of each of the ``m * n`` perturbation updates.
    m, n : int
        Full passes per minibatch, and first-layer-only perturbation updates after each.
    loss_fn : callable
        ``loss_fn(output, y)``, a mean over the batch.
    clamp : (low, high), optional
        Valid input range.
    """
    x = x.detach()
    eta = (torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) * 2 - 1) * eps
    if clamp is not None:
        eta = (x + eta).clamp(*clamp) - x
    optimizer.zero_grad(set_to_none=True)
    first_params = [p for p in first_layer.parameters() if p.requires_grad]
    total = 0.0
    for _ in range(int(m)):
        # 1. full forward/backward: gradients of the rest, and the adjoint p at f0's output
        with torch.no_grad():
            z = first_layer(x + eta)
        z.requires_grad_(True)
        loss = loss_fn(rest(z), y) / m
        loss.backward()
        p = z.grad.detach()  # (B, ...) frozen adjoint
        total += float(loss.detach())
        # 2. n perturbation updates through the first layer only: ascent on <p, f0(x + eta)>
        for _ in range(int(n)):
            eta.requires_grad_(True)
            hamiltonian = (p * first_layer(x + eta)).sum()
            (grad,) = torch.autograd.grad(hamiltonian, eta)
            eta = (eta.detach() + step * grad.sign()).clamp(-eps, eps)
            if clamp is not None:
                eta = (x + eta).clamp(*clamp) - x
        # 3. first-layer weight gradient from the Hamiltonian at the updated perturbation
        hamiltonian = (p * first_layer(x + eta)).sum()
        grads = torch.autograd.grad(hamiltonian, first_params)
        for prm, g in zip(first_params, grads):
            prm.grad = g if prm.grad is None else prm.grad + g
    optimizer.step()
    return total
