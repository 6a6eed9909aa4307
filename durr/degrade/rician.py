"""``mr-rician``: magnitude MR noise.

    y = | x + s r n1 + i s r n2 |,   n1, n2 ~ N(0, 1) independent,

with ``r`` the 99.5th percentile of the clean image and the level in percent of ``r``
(level 5 means ``s = 0.05``). In the background (x = 0) y is Rayleigh distributed with mean
``s r sqrt(pi / 2)``. The reference is the clean image.

For a volume, ``apply_numpy`` uses one ``r`` for the whole volume (the percentile over all its
voxels), so that every slice gets the same noise standard deviation, as in a real acquisition.
"""

from __future__ import annotations

import math

import torch

from durr.degrade.base import Degradation, Degraded, _per_image, per_image_noise

__all__ = ["Rician", "percentile", "rician_sigma", "complex_gaussian", "volume_scale"]


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q``-th percentile of each row of ``values`` (B, N), linear interpolation.

    Same definition as ``numpy.percentile(..., method="linear")``: position ``q/100 * (N - 1)``
    in the sorted row. Returns (B,) float32 (computed in float64).
    """
    values = values.double()
    n = values.shape[1]
    position = q / 100.0 * (n - 1)
    lo = math.floor(position)
    frac = position - lo
    hi = min(lo + 1, n - 1)
    v_lo = torch.kthvalue(values, lo + 1, dim=1).values
    v_hi = torch.kthvalue(values, hi + 1, dim=1).values if frac > 0 else v_lo
    return (v_lo + (v_hi - v_lo) * frac).float()


def rician_sigma(clean: torch.Tensor, levels: torch.Tensor, scale=None) -> torch.Tensor:
    """Noise std per component, ``s / 100 * r``: (B,) float32 for clean (B, 1, H, W), levels (B,).

    ``r`` is each image's 99.5th percentile, or ``scale`` (float or (B,)) when given.
    """
    batch = clean.shape[0]
    if scale is None:
        r = percentile(clean.reshape(batch, -1), 99.5)
    else:
        r = _per_image(scale, batch, clean.device, "scale")
    return levels / 100.0 * r.to(clean.device)


def complex_gaussian(sigma: torch.Tensor, shape: tuple[int, int], generator: torch.Generator | None,
                     device: torch.device) -> torch.Tensor:
    """``sigma (n1 + i n2)``, n1, n2 ~ N(0, 1): complex64 (B, 1, *shape) for sigma (B,).

    Drawn image by image in batch order (``per_image_noise``).
    """
    sigma = sigma.view(-1, 1, 1, 1)
    noise = per_image_noise("normal", sigma.shape[0], (2, *shape), generator, device)
    return torch.complex(sigma * noise[:, 0:1], sigma * noise[:, 1:2])


def volume_scale(volume: torch.Tensor) -> float:
    """One ``r`` for all slices of a volume (Z, 1, H, W): the 99.5th percentile over all its voxels."""
    return float(percentile(volume.reshape(1, -1), 99.5)[0])


class Rician(Degradation):
    """Rician (magnitude) noise at ``s`` percent of the 99.5th percentile ``r``; (B, 1, H, W).

    ``degrade``/``forward`` accept ``scale`` (float or (B,)) to use a given ``r`` instead of the
    per-image percentile (``apply_numpy`` passes the volume's ``r`` that way).
    """

    name = "mr-rician"
    modality = "MR"
    level_unit = "percent of r, the 99.5th percentile of the clean image (noise std s/100 * r)"
    seen = (1.0, 5.0)
    unseen = (7.0, 9.0, 12.0)

    def degrade(self, clean, levels, generator, spacing_mm, scale=None) -> Degraded:
        sigma = rician_sigma(clean, levels, scale)
        noise = complex_gaussian(sigma, clean.shape[2:], generator, clean.device)
        return Degraded(torch.sqrt((clean + noise.real) ** 2 + noise.imag**2), clean.clone())

    def volume_options(self, volume: torch.Tensor) -> dict:
        """One ``r`` for all slices: the 99.5th percentile over the whole volume (Z, 1, H, W)."""
        return {"scale": volume_scale(volume)}
