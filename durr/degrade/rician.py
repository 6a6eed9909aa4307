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

__all__ = ["Rician", "percentile"]


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
        batch = clean.shape[0]
        if scale is None:
            r = percentile(clean.reshape(batch, -1), 99.5)
        else:
            r = _per_image(scale, batch, clean.device, "scale")
        sigma = (levels / 100.0 * r.to(clean.device)).view(-1, 1, 1, 1)
        noise = per_image_noise("normal", batch, (2, *clean.shape[2:]), generator, clean.device)
        real = clean + sigma * noise[:, 0:1]
        imag = sigma * noise[:, 1:2]
        return Degraded(torch.sqrt(real**2 + imag**2), clean.clone())

    def volume_options(self, volume: torch.Tensor) -> dict:
        """One ``r`` for all slices: the 99.5th percentile over the whole volume (Z, 1, H, W)."""
        return {"scale": float(percentile(volume.reshape(1, -1), 99.5)[0])}
