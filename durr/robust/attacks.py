"""Projected gradient attacks (PGD-k, Madry, Makelov, Schmidt, Tsipras, Vladu, ICLR 2018).

``pgd_attack`` is generic: it perturbs the input of any differentiable ``model_fn`` within an
L-infinity ball to *maximise* any scalar ``loss_fn(model_fn(x_adv))``. For a classifier the loss
is the cross-entropy to the true labels; for a restorer it is the restoration error to the
clean image (perturbations of the degraded scan that maximise the error).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

Tensor = torch.Tensor

__all__ = ["pgd_attack", "restoration_attack", "classification_loss"]


def pgd_attack(model_fn: Callable[[Tensor], Tensor], x: Tensor, loss_fn: Callable[[Tensor], Tensor], eps: float,
               step: float, k: int, *, random_start: bool = True, clamp: tuple[float, float] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """``k`` steps of signed-gradient ascent on ``loss_fn(model_fn(x + delta))``, ``|delta|_inf <= eps``.

    Parameters
    ----------
    model_fn : callable
        Input (B, ...) -> output; called once per step. Gradients to its parameters are not
        accumulated (only the input gradient is taken).
    x : Tensor (B, ...)
        Clean inputs.
    loss_fn : callable
        Output -> scalar to maximise. Use a sum (or mean) over the batch: with the sign step
        each sample's update depends only on its own loss when the model treats samples
        independently (eval mode).
    eps, step : float
        Radius of the L-infinity ball and step size.
    k : int
        Number of steps (PGD-k).
    random_start : bool
        Start from a uniform draw in the ball (Madry et al.).
    clamp : (low, high), optional
        Valid range of the inputs (e.g. (0, 1) for images in [0, 1]).
    generator : torch.Generator, optional
        For the random start.

    Returns
    -------
    Tensor
        The adversarial input, detached, same shape as ``x``.

    Examples
    --------
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
    >>> x_adv = pgd_attack(model, x, classification_loss(y), eps=0.1, step=0.025, k=10, clamp=(0, 1))
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """
    x = x.detach()
    if random_start:
        delta = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1).to(x.device) * eps
    else:
        delta = torch.zeros_like(x)
    if clamp is not None:
        delta = (x + delta).clamp(*clamp) - x
    for _ in range(int(k)):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model_fn(x + delta))
            (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
        if clamp is not None:
            delta = (x + delta).clamp(*clamp) - x
    return (x + delta).detach()


def classification_loss(labels: Tensor) -> Callable[[Tensor], Tensor]:
    """The loss to maximise against a classifier: summed cross-entropy to ``labels``."""
    return lambda logits: F.cross_entropy(logits, labels, reduction="sum")


def restoration_attack(restore_fn: Callable[[Tensor], Tensor], degraded: Tensor, clean: Tensor, eps: float,
                       step: float | None = None, k: int = 20, **kwargs) -> Tensor:
    """PGD-k on a restorer: the degraded scan ``degraded`` (B, 1, H, W) perturbed within ``eps`` to
    maximise the squared error of ``restore_fn(degraded_adv)`` to ``clean``. ``step`` defaults to
    ``2.5 eps / k``. Returns the adversarial degraded scan."""
    step = 2.5 * eps / k if step is None else step
    return pgd_attack(restore_fn, degraded, lambda out: ((out - clean) ** 2).sum(), eps, step, k, **kwargs)
