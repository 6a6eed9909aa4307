"""``mr-undersample``: Cartesian k-space undersampling at acceleration R, zero-filled recon.

For a clean image x (H, W), ``F`` the orthonormal 2D DFT and ``M`` a mask of phase-encoding lines:

    k     = F(x)                                    rows k_y = const are phase-encoding lines,
                                                    the readout runs along W (always complete)
    y     = | F^-1( M * (k + s r (n1 + i n2)) ) |   n1, n2 ~ N(0, 1) on every k-space sample

``M`` keeps the ``c = max(1, round(0.08 H))`` lines nearest k_y = 0 (the fully sampled centre)
and draws the rest uniformly without replacement from the other lines, ``max(c, round(H / R))``
lines in all: the sampled fraction is 1/R up to integer rounding, more when R is so large that
the centre alone exceeds H / R.

Noise: receiver noise is white complex Gaussian on the acquired samples, so it is added in
k-space, before the mask (lines not acquired carry no noise). ``s`` and ``r`` are ``mr-rician``'s
level and scale (percent of the clean image's 99.5th percentile, ``durr.degrade.rician``): the
DFT is orthonormal, so at R = 1 the image gets complex Gaussian noise of std ``s r`` per
component and ``y`` has exactly ``mr-rician``'s distribution at level s. At R > 1 each pixel is still Rician
(the magnitude of a circular complex Gaussian around the aliased signal), with std
``s r sqrt(lines / H)``, correlated along H. The reference is the clean image.
"""

from __future__ import annotations

import math

import torch

from durr.degrade.base import Degradation, Degraded
from durr.degrade.rician import complex_gaussian, rician_sigma, volume_scale

__all__ = ["MRUndersample", "sampling_mask", "centre_lines", "CENTRE_FRACTION"]

CENTRE_FRACTION = 0.08     # fully sampled low frequencies, a fraction of the H lines


def centre_lines(height: int) -> torch.Tensor:
    """Indices (c,) of the ``c = max(1, round(0.08 H))`` rows nearest k_y = 0, in ``fft2`` order."""
    count = max(1, math.floor(CENTRE_FRACTION * height + 0.5))
    return torch.arange(-(count // 2), count - count // 2) % height


def sampling_mask(height: int, acceleration: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean (H,) mask of the sampled phase-encoding rows, in ``fft2`` order (row 0 is k_y = 0).

    The centre rows plus random others, ``max(c, round(H / R))`` in all; the draws (one
    ``randperm``) come from ``generator`` on its device; the mask is returned there.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    mask = torch.zeros(height, dtype=torch.bool, device=device)
    mask[centre_lines(height).to(device)] = True
    total = max(int(mask.sum()), min(height, math.floor(height / acceleration + 0.5)))
    others = (~mask).nonzero().squeeze(1)
    pick = torch.randperm(others.numel(), generator=generator, device=device)[:total - int(mask.sum())]
    mask[others[pick]] = True
    return mask


class MRUndersample(Degradation):
    """Undersampled Cartesian MR at acceleration R >= 1 (level R); (B, 1, H, W) in scanner units.

    Parameters
    ----------
    noise : k-space noise in ``mr-rician``'s level unit (percent of the clean image's 99.5th
        percentile r); 0 disables it. ``forward`` accepts ``scale`` to give r (as ``mr-rician``).

    Examples
    --------
    >>> deg = MRUndersample()
    >>> out = deg(torch.rand(2, 1, 48, 40), torch.tensor([2.0, 4.0]), generator=torch.Generator().manual_seed(0))
    >>> out.noisy.shape
    torch.Size([2, 1, 48, 40])
    """

    name = "mr-undersample"
    modality = "MR"
    level_unit = "acceleration R (1/R of the phase-encoding lines sampled; 1 = fully sampled)"
    seen = (2.0, 4.0)
    unseen = (6.0, 8.0)

    def __init__(self, noise: float = 1.0):
        super().__init__()
        if not (0.0 <= float(noise) < float("inf")):
            raise ValueError(f"{self.name}: noise must be finite and >= 0, got {noise!r}")
        self.noise = float(noise)

    def degrade(self, clean, levels, generator, spacing_mm, scale=None) -> Degraded:
        if (levels < 1).any():
            raise ValueError(f"{self.name}: the acceleration R must be >= 1, got {levels.tolist()}")
        batch, _, height, width = clean.shape
        if self.noise > 0:
            sigma = rician_sigma(clean, torch.full_like(levels, self.noise), scale)
        kspace = torch.fft.fft2(clean, norm="ortho")                        # (B, 1, H, W) complex
        noisy = []
        for i in range(batch):      # per image: its mask, then its noise (base.py's draw order)
            mask = sampling_mask(height, float(levels[i]), generator).to(clean.device).view(-1, 1)
            k = kspace[i:i + 1]
            if self.noise > 0:
                k = k + complex_gaussian(sigma[i:i + 1], (height, width), generator, clean.device)
            noisy.append(torch.fft.ifft2(k * mask, norm="ortho").abs())
        return Degraded(torch.cat(noisy), clean.clone())

    def volume_options(self, volume: torch.Tensor) -> dict:
        """One noise scale r for all slices (as ``mr-rician``); each slice draws its own mask."""
        return {"scale": volume_scale(volume)} if self.noise > 0 else {}
