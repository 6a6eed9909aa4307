"""User degradation functions for tests/test_degrade_custom.py, good and bad.

Each takes ``(clean (B,1,H,W), level (B,), generator)`` and returns a tensor (B,1,H,W).
"""

import torch

NOT_A_FUNCTION = 3


def speckle(clean, level, generator):
    """Multiplicative noise ``x (1 + level n)``, one draw per image in batch order."""
    noise = torch.stack([torch.randn(clean.shape[1:], generator=generator) for _ in range(clean.shape[0])])
    return clean * (1 + level.view(-1, 1, 1, 1) * noise)


def dim(clean, level, generator):
    """Deterministic: ``x (1 - level)``."""
    return clean * (1 - level.view(-1, 1, 1, 1))


def two_args(clean, level):
    return clean


def returns_array(clean, level, generator):
    return clean.numpy()


def wrong_shape(clean, level, generator):
    return clean[..., 1:]


def nan_above_one(clean, level, generator):
    """NaN wherever the level exceeds 1: fine on a first call at a low level, not later."""
    return torch.where(level.view(-1, 1, 1, 1) > 1, torch.full_like(clean, float("nan")), clean)
