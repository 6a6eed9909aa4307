"""Map images between physical units and the model's working domain, per modality.

CT: HU / 1000 (air -1, water 0). MR: divided by the 99.5th percentile of the *degraded*
slice (the clean image is never available at inference), and non-negative on the way back.
Other: as is ([0, 1]).
"""

from __future__ import annotations

import torch

CT_SCALE_HU = 1000.0
MR_PERCENTILE = 99.5


def robust_scale(degraded: torch.Tensor, modality: str) -> torch.Tensor:
    """Per-image scale, shape (B, 1, 1, 1), for degraded images (B, 1, H, W) in physical units."""
    batch = degraded.shape[0]
    if modality == "CT":
        return degraded.new_full((batch, 1, 1, 1), CT_SCALE_HU)
    if modality == "MR":
        flat = degraded.reshape(batch, -1).float()
        scale = torch.quantile(flat, MR_PERCENTILE / 100.0, dim=1)
        # A slice of pure background would otherwise be blown up to full range.
        floor = flat.abs().amax(dim=1).clamp_min(1e-6) * 1e-3
        return torch.maximum(scale, floor).reshape(batch, 1, 1, 1).to(degraded.dtype)
    return degraded.new_ones((batch, 1, 1, 1))


def to_model(image: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Physical units -> working domain, both (B, 1, H, W)."""
    return image / scale


def from_model(image: torch.Tensor, scale: torch.Tensor, modality: str | None = None) -> torch.Tensor:
    """Working domain -> physical units, both (B, 1, H, W).

    With ``modality="MR"`` negative values are set to 0: a magnitude image has none, and a
    restorer that removes the Rician bias of the background overshoots below 0 there.
    """
    image = image * scale
    return image.clamp_min(0.0) if modality == "MR" else image
