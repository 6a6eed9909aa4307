"""``gaussian``: additive white Gaussian noise on [0, 1] images.

    y = x + (s / 255) n,    n ~ N(0, 1) i.i.d. per pixel,

with the level ``s`` in 1/255 units (``s = 25`` is the classic sigma 25 of 8-bit images). The
result is not clipped; the reference is the clean image.
"""

from __future__ import annotations

import torch

from durr.degrade.base import Degradation, Degraded, per_image_noise

__all__ = ["Gaussian"]


class Gaussian(Degradation):
    """Additive Gaussian noise, ``y = x + (s/255) n``; clean and noisy (B, 1, H, W) in [0, 1] units.

    Examples
    --------
    >>> deg = Gaussian()
    >>> out = deg(torch.full((2, 1, 8, 8), 0.5), 25.0, generator=torch.Generator().manual_seed(0))
    >>> out.noisy.shape
    torch.Size([2, 1, 8, 8])
    """

    name = "gaussian"
    modality = "OT"
    level_unit = "s in 1/255 (noise standard deviation s/255 on [0, 1] images)"
    seen = (5.0, 35.0)
    unseen = (45.0, 55.0, 65.0)

    def degrade(self, clean, levels, generator, spacing_mm) -> Degraded:
        noise = per_image_noise("normal", clean.shape[0], tuple(clean.shape[1:]), generator, clean.device)
        noisy = clean + (levels / 255.0).view(-1, 1, 1, 1) * noise
        return Degraded(noisy, clean.clone())
