"""``blur``: Gaussian blur of standard deviation ``s`` pixels, no noise.

    y = G_s * x,   G_s the 2D Gaussian kernel, truncated at 4 s (radius ``int(4 s + 0.5)``),

separable, with reflect padding (``d c b | a b c d``, the edge pixel not repeated; scipy's
``mode="mirror"``), for any kernel size. Level 0 is the identity; the reference is the clean
image. Blur is unit-free (any modality), so it is mostly a first step to compose with a noise
family (``durr.degrade.custom``).
"""

from __future__ import annotations

import torch

from durr.degrade.base import Degradation, Degraded

__all__ = ["Blur", "blur_matrices"]

TRUNCATE = 4.0     # kernel radius in standard deviations (as scipy.ndimage.gaussian_filter)


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside [0, n) folded back by reflection about the edge pixels."""
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


def blur_matrices(sigma: torch.Tensor, n: int) -> torch.Tensor:
    """Per-image 1D blur operators along an axis of length ``n``, padding folded in.

    sigma : (B,) standard deviations in pixels (0: identity).
    Returns (B, n, n) float32 ``M`` with ``blurred[i] = sum_j M[i, j] x[j]``.
    """
    radius = (TRUNCATE * sigma + 0.5).floor().long()                    # (B,)
    r_max = int(radius.max())
    taps = torch.arange(-r_max, r_max + 1, device=sigma.device)         # (K,)
    weights = torch.exp(-0.5 * (taps / sigma.clamp_min(1e-6).unsqueeze(1)) ** 2)
    weights = weights * (taps.abs() <= radius.unsqueeze(1))             # each image's own radius
    weights = weights / weights.sum(1, keepdim=True)                    # (B, K)
    source = _reflect(torch.arange(n, device=sigma.device).unsqueeze(1) + taps, n)   # (n, K)
    batch = sigma.shape[0]
    matrix = torch.zeros(batch, n, n, device=sigma.device)
    return matrix.scatter_add_(2, source.expand(batch, n, -1),
                               weights.unsqueeze(1).expand(batch, n, -1).contiguous())


class Blur(Degradation):
    """Gaussian blur of ``s`` pixels (per image); clean and blurred (B, 1, H, W), any unit.

    Examples
    --------
    >>> out = Blur()(torch.rand(2, 1, 16, 16), torch.tensor([0.0, 1.5]))
    >>> out.noisy.shape
    torch.Size([2, 1, 16, 16])
    """

    name = "blur"
    modality = "OT"
    level_unit = "Gaussian blur standard deviation s in pixels"
    seen = (0.5, 2.0)
    unseen = (3.0, 4.0)

    def degrade(self, clean, levels, generator, spacing_mm) -> Degraded:
        height, width = clean.shape[-2:]
        rows = blur_matrices(levels, height).unsqueeze(1)                   # (B, 1, H, H)
        cols = blur_matrices(levels, width).unsqueeze(1)                    # (B, 1, W, W)
        blurred = rows @ clean @ cols.transpose(-1, -2)
        # exactly the input at level 0, whatever the matmul precision (e.g. TF32 on a GPU)
        blurred = torch.where(levels.view(-1, 1, 1, 1) > 0, blurred, clean)
        return Degraded(blurred, clean.clone())
