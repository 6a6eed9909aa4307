"""``ct-sparseview``: sparse-view CT, the ``ct-lowdose`` scanner with only ``n`` of its 720 views.

For a clean slice in HU with pixel spacing ``a`` mm, ``n`` views and dose fraction ``d``:

    mu      = max(0, 0.0192 * (1 + HU / 1000))          attenuation per mm
    p_n     = a * Radon_n(mu)                            line integrals at j * 180 / n degrees, j < n
    I       ~ Poisson(d * N0 * exp(-p_n)),  N0 = 1e6;  I = 1 where I = 0   (skipped if d is None)
    noisy     = HU(FBP_n(-log(I / (d * N0))) / a),   reference = HU(FBP_720(p_720) / a)

``FBP_n`` weights the back-projection by ``pi / (2 n)``, so a sparse scan keeps the right mean
and shows streaks (aliasing of the missing views) that grow as ``n`` falls. The reference is
``ct-lowdose``'s: the noise-free 720-view reconstruction (``durr.degrade.ct_lowdose``).

Geometry reuse: when ``n`` divides 720 its views are a subset of the 720 views, so the sparse
sinogram is cut from the reference's and back-projected by the 720-view operator with the
missing views set to zero and the sum scaled by ``720 / n`` (the same sum as ``FBP_n``): no
new projection matrices. Other ``n`` build their own (``n`` views, or ``2n`` with every other
view zero when ``n`` is odd, since ``durr.degrade.radon`` needs an even count).
"""

from __future__ import annotations

import torch

from durr.degrade.base import Degradation, Degraded
from durr.degrade.ct_lowdose import FULL_VIEWS, PHOTONS, line_integrals, prelog_poisson, reconstruct_hu

__all__ = ["CTSparseView", "view_geometry"]


def view_geometry(n: int) -> tuple[int, int]:
    """(m, stride): the radon geometry of ``m`` views whose every ``stride``-th view is an ``n``-view scan."""
    if FULL_VIEWS % n == 0:
        return FULL_VIEWS, FULL_VIEWS // n
    return (n, 1) if n % 2 == 0 else (2 * n, 2)


class CTSparseView(Degradation):
    """Sparse-view CT with ``n`` views in [0, 180) (level n, integer 1..720); (B, 1, H, W) in HU.

    Parameters
    ----------
    circle : the ``ct-lowdose`` field of view option (inscribed disk instead of the whole slice).
    dose : dose fraction per ray of the ``n`` views (1 = 1e6 photons); None: noise-free.

    Examples
    --------
    >>> deg = CTSparseView()
    >>> hu = torch.full((2, 1, 64, 64), -1000.0); hu[..., 16:48, 16:48] = 0.0
    >>> out = deg(hu, torch.tensor([120.0, 60.0]), generator=torch.Generator().manual_seed(0))
    >>> out.noisy.shape
    torch.Size([2, 1, 64, 64])
    """

    name = "ct-sparseview"
    modality = "CT"
    level_unit = "number of views n in [0, 180) degrees (integer, 720 = full scan; fewer is streakier)"
    seen = (120.0, 360.0)
    unseen = (90.0, 60.0)
    level_grid = (360.0, 300.0, 240.0, 180.0, 144.0, 120.0, 90.0, 60.0)
    photons = PHOTONS

    def __init__(self, circle: bool = False, dose: float | None = 1.0):
        super().__init__()
        if dose is not None and not (float(dose) > 0 and float(dose) < float("inf")):
            raise ValueError(f"{self.name}: dose must be > 0 and finite, or None, got {dose!r}")
        self.circle = bool(circle)
        self.dose = None if dose is None else float(dose)

    def severity(self, level) -> torch.Tensor:
        """720 / n: the angular gap between views, in units of the full scan's."""
        return FULL_VIEWS / torch.as_tensor(level, dtype=torch.float64).clamp_min(1e-6)

    def level_of_severity(self, severity) -> torch.Tensor:
        return FULL_VIEWS / torch.as_tensor(severity, dtype=torch.float64)

    def views(self, levels: torch.Tensor) -> list[int]:
        """Levels (B,) -> view counts; ValueError unless each is an integer in 1..720."""
        n = levels.double().round()
        if ((levels.double() - n).abs() > 1e-3).any() or (n < 1).any() or (n > FULL_VIEWS).any():
            raise ValueError(f"{self.name}: the level is a number of views, an integer in 1..{FULL_VIEWS}, "
                             f"got {levels.tolist()}")
        return [int(v) for v in n.tolist()]

    def degrade(self, clean, levels, generator, spacing_mm) -> Degraded:
        views = self.views(levels)
        full = line_integrals(clean, spacing_mm, FULL_VIEWS, self.circle)     # (B, 720, L)
        reference = reconstruct_hu(full, clean, spacing_mm, self.circle)
        groups = [([i for i, v in enumerate(views) if v == n], *view_geometry(n)) for n in sorted(set(views))]
        sparse = [None] * len(views)                                          # (n, L) per image
        for idx, m, stride in groups:
            sino = full[idx] if m == FULL_VIEWS else line_integrals(clean[idx], spacing_mm[idx], m, self.circle)
            for i, s in zip(idx, sino[:, ::stride]):
                sparse[i] = s
        if self.dose is not None:
            blank = torch.tensor([self.photons * self.dose], device=clean.device)
            sparse = [prelog_poisson(s[None], blank, generator)[0] for s in sparse]   # batch order
        noisy = torch.empty_like(clean)
        for idx, m, stride in groups:
            filled = full.new_zeros(len(idx), m, full.shape[-1])
            filled[:, ::stride] = torch.stack([sparse[i] for i in idx]) * stride   # pi/(2m) -> pi/(2n)
            noisy[idx] = reconstruct_hu(filled, clean[idx], spacing_mm[idx], self.circle)
        return Degraded(noisy, reference)
