"""The reward's PSNR, shared by the policy trainer and the gymnasium environment."""

from __future__ import annotations

import torch

# Peak-to-peak range of the working domain: CT is HU/1000 on [-1000, 1000] HU -> 2.
WORKING_DATA_RANGE = {"CT": 2.0, "MR": 1.0, "OT": 1.0}


def working_psnr(x: torch.Tensor, clean: torch.Tensor, modality: str) -> torch.Tensor:
    """PSNR in dB per image (B,), for x, clean (B, 1, H, W) in the working domain."""
    mse = (x - clean).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(WORKING_DATA_RANGE[modality] ** 2 / mse)
