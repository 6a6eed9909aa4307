"""Reversible blocks with a memory-saving backward pass (Gomez, Ren, Urtasun, Grosse, 2017).

A RevNet block is the coupled forward Euler step of :class:`durr.schemes.rules.RevNet`
(``split="channels"``): with ``x = (x1, x2)`` split along channels,

    y1 = x1 + F(x2),        y2 = x2 + G(y1),

and its inverse ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``. A stack of such blocks therefore need
not keep its activations for backpropagation: :class:`ReversibleSequence` runs the forward
pass without building a graph, keeps only the final output, and in the backward pass walks the
blocks in reverse, reconstructing each block's input from its output and recomputing the
local graph of ``F`` and ``G`` just long enough to backpropagate through it. Activation memory
is then that of one block, whatever the depth.

Two ways to see the saving are provided: :func:`saved_tensor_bytes` (the bytes that autograd
keeps for the backward pass, counted with ``torch.autograd.graph.saved_tensors_hooks``) and
:func:`peak_memory_bytes` (the peak of live CPU tensor memory during forward + backward, from
the allocation events of ``torch.profiler`` with ``profile_memory=True``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Tensor = torch.Tensor

__all__ = ["RevBlock", "ReversibleSequence", "saved_tensor_bytes", "peak_memory_bytes"]


class RevBlock(nn.Module):
    """One reversible block ``(x1, x2) -> (x1 + F(x2), x2 + G(x1 + F(x2)))``.

    ``F`` and ``G`` map (B, C/2, H, W) -> (B, C/2, H, W); the block maps (B, C, H, W) to the same.
    They must be deterministic (no dropout, no batch statistics), because the backward pass
    of :class:`ReversibleSequence` calls them again.
    """

    def __init__(self, F: nn.Module, G: nn.Module):
        super().__init__()
        self.F, self.G = F, G

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)  # (B, C/2, H, W) each
        y1 = x1 + self.F(x2)
        y2 = x2 + self.G(y1)
        return torch.cat([y1, y2], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = y.chunk(2, dim=1)
        x2 = y2 - self.G(y1)
        x1 = y1 - self.F(x2)
        return torch.cat([x1, x2], dim=1)

    def backward_pass(self, y: Tensor, dy: Tensor, params: list[Tensor]) -> tuple[Tensor, Tensor, list]:
        """From the output ``y`` and its gradient ``dy``: the input ``x``, ``dx``, param grads.

        Gomez et al.'s Algorithm 1: one recomputation of ``G`` and ``F`` serves both the
        reconstruction and the backpropagation.
        """
        y1, y2 = y.chunk(2, dim=1)
        dy1, dy2 = dy.chunk(2, dim=1)
        with torch.enable_grad():
            z1 = y1.detach().requires_grad_(True)
            gz = self.G(z1)
            g_params = [p for p in self.G.parameters() if p.requires_grad]
            grads_g = torch.autograd.grad(gz, [z1] + g_params, dy2, allow_unused=True)
        x2 = (y2 - gz).detach()
        dz1 = dy1 + grads_g[0]
        with torch.enable_grad():
            x2_ = x2.requires_grad_(True)
            fx = self.F(x2_)
            f_params = [p for p in self.F.parameters() if p.requires_grad]
            grads_f = torch.autograd.grad(fx, [x2_] + f_params, dz1, allow_unused=True)
        x1 = (y1 - fx).detach()
        dx2 = dy2 + grads_f[0]
        by_param = {id(p): g for p, g in zip(g_params, grads_g[1:])}
        by_param.update({id(p): g for p, g in zip(f_params, grads_f[1:])})
        return torch.cat([x1, x2.detach()], dim=1), torch.cat([dz1, dx2], dim=1), [by_param.get(id(p)) for p in params]


class _ReversibleFunction(torch.autograd.Function):
    """Forward without a graph, keep only the output; backward by inversion and recomputation."""

    @staticmethod
    def forward(ctx, x, blocks, *params):
        ctx.blocks = blocks
        with torch.no_grad():
            for block in blocks:
                x = block(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        blocks = ctx.blocks
        all_params = [p for b in blocks for p in b.parameters() if p.requires_grad]
        totals: list[Tensor | None] = [None] * len(all_params)
        index = {id(p): i for i, p in enumerate(all_params)}
        for block in reversed(blocks):
            block_params = [p for p in block.parameters() if p.requires_grad]
            y, dy, grads = block.backward_pass(y, dy, block_params)
            for p, g in zip(block_params, grads):
                if g is not None:
                    i = index[id(p)]
                    totals[i] = g if totals[i] is None else totals[i] + g
        return (dy, None, *totals)


class ReversibleSequence(nn.Module):
    """A stack of :class:`RevBlock` with an optional memory-saving backward pass.

    Parameters
    ----------
    blocks : sequence of RevBlock
    memory_saving : bool
        If True (default) and gradients are enabled, the forward pass stores only its output
        and the backward pass recomputes activations through the inverse. If False, ordinary
        autograd stores every activation (the reference for gradients and memory).

    Shapes: (B, C, H, W) -> (B, C, H, W), ``C`` even.
    """

    def __init__(self, blocks, memory_saving: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.memory_saving = memory_saving

    def forward(self, x: Tensor) -> Tensor:
        if self.memory_saving and torch.is_grad_enabled():
            params = [p for p in self.parameters() if p.requires_grad]
            return _ReversibleFunction.apply(x, list(self.blocks), *params)
        for block in self.blocks:
            x = block(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        """Reconstruct the input from the output (B, C, H, W)."""
        for block in reversed(self.blocks):
            y = block.inverse(y)
        return y


def saved_tensor_bytes(fn: Callable[[], Tensor], exclude: list[Tensor] | tuple = ()) -> int:
    """Bytes autograd saves for the backward pass while ``fn()`` runs its forward pass.

    Counts each distinct storage once, skipping those of ``exclude`` (pass the parameters:
    they live anyway). This is the activation memory a backward pass must keep alive.
    """
    seen: dict[int, int] = {}
    skip = {t.untyped_storage().data_ptr() for t in exclude}

    def pack(t: Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in skip:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def peak_memory_bytes(fn: Callable[[], None]) -> int:
    """Peak of live CPU tensor memory (bytes above the level at entry) while ``fn()`` runs.

    Computed from the allocation events that ``torch.profiler`` records with
    ``profile_memory=True`` (every allocation and free, with its signed size): the running sum
    of their sizes in time order, and its maximum. Allocations made before ``fn`` and freed
    inside it count negatively, so the figure is a lower bound of the true increase.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        from torch._C._profiler import _EventType

        roots = prof.profiler.kineto_results.experimental_event_tree()
    except (ImportError, AttributeError) as err:  # private API: say so rather than guess
        raise RuntimeError(f"peak_memory_bytes: this torch build exposes no allocation events ({err})") from None
    sizes: list[tuple[int, int]] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            sizes.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        stack.extend(node.children)
    sizes.sort()
    level = peak = 0
    for _, delta in sizes:
        level += delta
        peak = max(peak, level)
    return peak
