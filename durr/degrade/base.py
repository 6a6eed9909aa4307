"""The degradation interface: ``Degradation(clean, level, generator=...) -> Degraded``.

Shapes: images are channel-first batches ``(B, 1, H, W)`` in the family's physical unit
(PROTOCOL.md section 1); a level is a float or one value per image, shape ``(B,)``.

Randomness: image ``i`` of a batch uses the ``i``-th draw from the generator, in batch order, on
the generator's device (CPU unless a CUDA generator is given). So a batch degrades exactly as
its images would one after another with the same generator, and the draws do not depend on
the device the images are on (the results agree up to floating point rounding, except that a
Poisson count may differ where its rate was rounded differently).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["Degradation", "Degraded", "per_image_noise"]


class Degraded(NamedTuple):
    """A degraded batch and the clean reference to score it against, both (B, 1, H, W)."""

    noisy: torch.Tensor
    reference: torch.Tensor


class Degradation(torch.nn.Module):
    """Base class of a degradation family: ``noisy = noise(A(clean))`` at a given level.

    Subclasses set the class attributes and implement ``degrade``; the base class checks and
    normalises the inputs once (``forward``) and offers ``apply_numpy`` for 2D/3D arrays.

    Attributes
    ----------
    name : registry key, e.g. ``"gaussian"``.
    modality : ``"CT"``, ``"MR"`` or ``"OT"`` (the unit the images are in).
    level_unit : what the level means, in words.
    seen : (lo, hi) training range of levels (PROTOCOL.md section 3).
    unseen : evaluation-only levels.
    level_grid : None, or the only levels training may draw (snapped to the nearest one in the
        seen range), for families with a discrete or costly-to-vary level.
    """

    name: str = ""
    modality: str = "OT"
    level_unit: str = ""
    seen: tuple[float, float] = (0.0, 0.0)
    unseen: tuple[float, ...] = ()
    level_grid: tuple[float, ...] | None = None   # levels training may use, when only some are valid

    def severity(self, level) -> torch.Tensor:
        """How heavy a level is: increasing with the degradation (float64, level's shape).

        The default is the level itself; families whose level falls as the degradation grows
        (dose, number of views) override this and ``level_of_severity``.
        """
        return torch.as_tensor(level, dtype=torch.float64)

    def level_of_severity(self, severity) -> torch.Tensor:
        """The inverse of ``severity``."""
        return torch.as_tensor(severity, dtype=torch.float64)

    def forward(self, clean: torch.Tensor, level, generator: torch.Generator | None = None,
                spacing_mm=None, **options) -> Degraded:
        """Degrade a batch.

        Parameters
        ----------
        clean : tensor (B, 1, H, W), float, in the family's unit.
        level : float or tensor (B,): one level per image.
        generator : torch.Generator for reproducible noise (None: torch's default generator).
        spacing_mm : float or tensor (B,) pixel spacing in mm (used by ``ct-lowdose`` only;
            None means 0.7 mm).
        **options : family-specific keywords passed to ``degrade`` (e.g. ``scale`` of
            ``mr-rician``).

        Returns
        -------
        Degraded(noisy, reference), both (B, 1, H, W) float32 on ``clean``'s device.

        Raises
        ------
        TypeError, ValueError for a wrong type, shape or level.
        """
        if not isinstance(clean, torch.Tensor):
            raise TypeError(f"{type(self).__name__}: clean must be a torch.Tensor, got {type(clean).__name__}")
        if clean.ndim != 4 or clean.shape[1] != 1:
            raise ValueError(f"{type(self).__name__}: clean must have shape (B, 1, H, W), got {tuple(clean.shape)}")
        clean = clean.float()
        batch = clean.shape[0]
        levels = _per_image(level, batch, clean.device, "level")
        if not torch.isfinite(levels).all() or (levels < 0).any():
            raise ValueError(f"{self.name}: levels must be finite and >= 0, got {levels.tolist()}")
        spacing = _per_image(0.7 if spacing_mm is None else spacing_mm, batch, clean.device, "spacing_mm")
        if not torch.isfinite(spacing).all() or (spacing <= 0).any():
            raise ValueError(f"{self.name}: spacing_mm must be > 0, got {spacing.tolist()}")
        return self.degrade(clean, levels, generator, spacing, **options)

    def degrade(self, clean: torch.Tensor, levels: torch.Tensor, generator: torch.Generator | None,
                spacing_mm: torch.Tensor, **options) -> Degraded:
        """The family's model on checked inputs: clean (B,1,H,W) float32, levels and spacing (B,)."""
        raise NotImplementedError

    def volume_options(self, volume: torch.Tensor) -> dict:
        """Extra keyword arguments of ``degrade`` shared by all slices of a volume (Z, 1, H, W)."""
        return {}

    def apply_numpy(self, image: np.ndarray, level: float, seed: int = 0, spacing_mm: float | None = None,
                    chunk: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Degrade a 2D image (H, W) or a volume (Z, H, W) slice by slice.

        Slices are degraded ``chunk`` at a time with one generator seeded by ``seed``.

        Returns
        -------
        (noisy, reference) : float32 arrays of the input's shape.
        """
        array = np.asarray(image, dtype=np.float32)
        if array.ndim not in (2, 3):
            raise ValueError(f"{self.name}: expected an (H, W) or (Z, H, W) array, got shape {array.shape}")
        stack = torch.from_numpy(np.ascontiguousarray(array.reshape(-1, 1, *array.shape[-2:])))
        generator = torch.Generator().manual_seed(int(seed))
        options = self.volume_options(stack) if array.ndim == 3 else {}
        noisy, reference = [], []
        for z in range(0, stack.shape[0], chunk):
            out = self(stack[z:z + chunk], level, generator=generator, spacing_mm=spacing_mm, **options)
            noisy.append(out.noisy)
            reference.append(out.reference)
        shape = array.shape
        return (torch.cat(noisy).reshape(shape).numpy(), torch.cat(reference).reshape(shape).numpy())


def per_image_noise(kind: str, batch: int, shape: tuple[int, ...], generator: torch.Generator | None,
                    device: torch.device, rates: torch.Tensor | None = None) -> torch.Tensor:
    """Noise for a batch, image by image in batch order, on the generator's device.

    Parameters
    ----------
    kind : ``"normal"`` (standard normal, shape (B, *shape)) or ``"poisson"`` (counts with mean
        ``rates``, a tensor (B, *shape)).
    generator : the draws come from it in batch order (None: torch's default generator).
    device : where the result goes.

    Returns
    -------
    tensor (B, *shape) float32 on ``device``.
    """
    source = generator.device if generator is not None else device
    draws = []
    for i in range(batch):
        if kind == "normal":
            draws.append(torch.randn(shape, generator=generator, device=source))
        elif kind == "poisson":
            draws.append(torch.poisson(rates[i].to(source), generator=generator))
        else:
            raise ValueError(f"unknown noise kind {kind!r}")
    return torch.stack(draws).to(device)


def _per_image(value, batch: int, device: torch.device, what: str) -> torch.Tensor:
    """A float or a (B,) sequence/tensor -> float32 tensor (B,) on ``device``."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if tensor.numel() == 1:
        return tensor.expand(batch).clone()
    if tensor.numel() != batch:
        raise ValueError(f"{what}: expected a scalar or {batch} values (one per image), got {tensor.numel()}")
    return tensor
