"""Training pairs: degraded and clean patches in the model's working domain, at seen levels.

Randomness comes only from the ``torch.Generator`` passed to ``sample``, so a run is
reproducible from its seed and resumable from the generator's saved state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from durr.control.normalize import robust_scale, to_model


def _family(family):
    from durr.degrade import get_degradation

    return get_degradation(family) if isinstance(family, str) else family


def severity(family, level: torch.Tensor) -> torch.Tensor:
    """A level mapped to 'how heavy' (monotone increasing; ``Degradation.severity``).

    family : a registered name or a ``Degradation``. E.g. ``ct-lowdose`` (dose fraction,
    smaller is heavier) has severity 1/sqrt(d); most families' levels already grow with it.
    """
    return _family(family).severity(level)


def sample_seen_levels(family, seen: tuple[float, float], n: int,
                       generator: torch.Generator) -> torch.Tensor:
    """n levels (float64) uniform in severity over the seen range.

    A family with a ``level_grid`` gets each draw snapped to the nearest grid level (in
    severity) inside the seen range.
    """
    deg = _family(family)
    lo, hi = deg.severity(torch.tensor(seen, dtype=torch.float64)).sort().values.tolist()
    sev = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    return levels_at_severity(deg, sev, seen)


def levels_at_severity(family, sev: torch.Tensor, seen: tuple[float, float]) -> torch.Tensor:
    """Levels (float64) at severities ``sev``, snapped to the family's ``level_grid`` (its
    levels inside ``seen``, nearest in severity) when it has one.
    """
    deg = _family(family)
    grid = getattr(deg, "level_grid", None)
    if not grid:
        return deg.level_of_severity(sev)
    grid = torch.tensor([g for g in grid if min(seen) <= g <= max(seen)], dtype=torch.float64)
    if grid.numel() == 0:
        raise ValueError(f"{deg.name}: no level of its grid lies in the seen range {seen}")
    return grid[(sev[:, None] - deg.severity(grid)[None]).abs().argmin(dim=1)]


@dataclass
class Pairs:
    """degraded, clean: (B, 1, P, P) working domain; level: (B,) float64 in the family's unit."""

    degraded: torch.Tensor
    clean: torch.Tensor
    level: torch.Tensor


class PairSampler:
    """Random crops of degraded/clean slice pairs.

    Two sources: clean slices degraded on the fly (cheap families), or a bank of slices
    degraded beforehand (``ct-lowdose``, whose FBP is too slow to run per batch).

    Parameters
    ----------
    clean : list of (H, W) float32 arrays in physical units (each at least ``patch`` wide).
    degradation : a ``durr.degrade.Degradation``.
    modality : "CT", "MR" or "OT" (the working-domain normalisation).
    patch : crop side in pixels.
    spacings : pixel spacing per slice in mm (CT physics only).
    bank : optional (degraded list, reference list, level tensor) replacing on-the-fly degradation.
    bank_weights : optional (N,) relative probability of drawing each bank slice (default: uniform).
    """

    def __init__(self, clean: list[np.ndarray], degradation, modality: str, patch: int = 64,
                 spacings: list[float] | None = None, bank=None, bank_weights: torch.Tensor | None = None):
        if not clean and bank is None:
            raise ValueError("PairSampler needs at least one clean slice")
        self.clean = [torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in clean]
        self.degradation = degradation
        self.modality = modality
        self.patch = patch
        self.spacings = spacings or [0.7] * len(clean)
        self.bank = bank
        if bank_weights is not None and (bank is None or len(bank_weights) != len(bank[0])):
            raise ValueError("bank_weights needs a bank and one weight per bank slice")
        self.bank_weights = None if bank_weights is None else torch.as_tensor(bank_weights, dtype=torch.float64)
        # the working-domain scale of each bank slice, computed once
        self.bank_scales = None if bank is None else [robust_scale(t[None, None], modality) for t in bank[0]]
        sizes = [t.shape for t in (bank[0] if bank else self.clean)]
        too_small = [s for s in sizes if min(s) < patch]
        if too_small:
            raise ValueError(f"{len(too_small)} slices are smaller than the patch size {patch}: {too_small[:3]}")

    def _crop(self, a: torch.Tensor, b: torch.Tensor, generator: torch.Generator):
        h, w = a.shape[-2:]
        i = int(torch.randint(0, h - self.patch + 1, (1,), generator=generator))
        j = int(torch.randint(0, w - self.patch + 1, (1,), generator=generator))
        sl = (..., slice(i, i + self.patch), slice(j, j + self.patch))
        return a[sl], b[sl]

    def whole(self, k: int) -> Pairs:
        """Bank slice ``k`` uncropped, as a batch of one (1, 1, H, W)."""
        degraded, reference, levels = self.bank
        scale = self.bank_scales[k]
        return Pairs(to_model(degraded[k][None, None], scale), to_model(reference[k][None, None], scale),
                     levels[k:k + 1].to(torch.float64))

    def sample(self, batch: int, generator: torch.Generator) -> Pairs:
        """Draw ``batch`` pairs."""
        ys, xs, levels = [], [], []
        if self.bank is not None:
            degraded, reference, bank_levels = self.bank
            if self.bank_weights is None:
                idx = torch.randint(0, len(degraded), (batch,), generator=generator).tolist()
            else:
                idx = torch.multinomial(self.bank_weights, batch, replacement=True, generator=generator).tolist()
            for k in idx:
                y, x = self._crop(degraded[k][None, None], reference[k][None, None], generator)
                scale = self.bank_scales[k]
                y, x = to_model(y, scale), to_model(x, scale)
                ys.append(y)
                xs.append(x)
            levels = bank_levels[idx]
        else:
            deg = self.degradation
            idx = torch.randint(0, len(self.clean), (batch,), generator=generator).tolist()
            levels = sample_seen_levels(deg, deg.seen, batch, generator)
            for k, level in zip(idx, levels.tolist()):
                clean = self.clean[k][None, None]
                out = deg(clean, level, generator=generator, spacing_mm=self.spacings[k])
                scale = robust_scale(out.noisy, self.modality)
                y, x = self._crop(to_model(out.noisy, scale), to_model(out.reference, scale), generator)
                ys.append(y)
                xs.append(x)
        return Pairs(torch.cat(ys), torch.cat(xs), torch.as_tensor(levels, dtype=torch.float64))
