"""``ct-lowdose``: low-dose CT by pre-log Poisson noise on a parallel-beam sinogram, then FBP.

For a clean slice in HU with pixel spacing ``a`` mm and dose fraction ``d``:

    mu      = max(0, 0.0192 * (1 + HU / 1000))          attenuation per mm (water 0.0192/mm)
    p       = a * Radon(mu)                              line integrals, 720 views in [0, 180)
    I       ~ Poisson(d * N0 * exp(-p)),  N0 = 1e6;  I = 1 where I = 0
    p_noisy = -log(I / (d * N0))
    noisy     = HU(FBP(p_noisy) / a),   reference = HU(FBP(p) / a),   HU(mu) = 1000 (mu/0.0192 - 1)

with FBP = ramp filter + linear-interpolation back-projection (``durr.degrade.radon``). The
reference is the noise-free reconstruction of the same geometry and filter, so the pair differs
by the dose only (it is close to, not equal to, the clean slice: the projection and
interpolation blur it slightly, and HU below -1000 become -1000).

Field of view: the whole slice. The detector spans the slice's diagonal (scikit-image's
``circle=False``), every pixel is attenuating and every pixel is reconstructed, so real slices
whose anatomy reaches the corners (zoomed reconstructions, e.g. 0.29 mm pixels) degrade
without a seam. What lies outside the slice is taken as air. ``CTLowDose(circle=True)`` uses
the inscribed-disk geometry instead (scikit-image's ``circle=True``); outside the disk
``noisy`` and ``reference`` then keep the clean values.
"""

from __future__ import annotations

import torch

from durr.degrade.base import Degradation, Degraded, per_image_noise
from durr.degrade.radon import circle_mask, fbp, radon

__all__ = ["CTLowDose", "MU_WATER", "PHOTONS", "FULL_VIEWS", "hu_to_mu", "mu_to_hu", "line_integrals",
           "prelog_poisson", "reconstruct_hu"]

MU_WATER = 0.0192     # per mm
PHOTONS = 1e6         # photons per ray at full dose (d = 1)
FULL_VIEWS = 720      # views of the full scan (and of the reference)


def hu_to_mu(hu: torch.Tensor) -> torch.Tensor:
    """Attenuation per mm, ``max(0, 0.0192 (1 + HU/1000))``."""
    return (MU_WATER * (1.0 + hu / 1000.0)).clamp_min(0.0)


def mu_to_hu(mu: torch.Tensor) -> torch.Tensor:
    """Hounsfield units, ``1000 (mu / 0.0192 - 1)``."""
    return 1000.0 * (mu / MU_WATER - 1.0)


def line_integrals(clean: torch.Tensor, spacing_mm: torch.Tensor, n_views: int, circle: bool) -> torch.Tensor:
    """Noise-free line integrals in mm, ``a * Radon(mu)``: clean (B, 1, H, W) HU, spacing (B,)
    -> (B, n_views, 2T + 1)."""
    return radon(hu_to_mu(clean[:, 0]), n_views, circle) * spacing_mm.view(-1, 1, 1)


def prelog_poisson(sino: torch.Tensor, blank: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noisy line integrals ``-log(I / b)``, ``I ~ Poisson(b exp(-p))`` with 0 counts set to 1.

    sino : (B, V, L) line integrals p; blank : (B,) unattenuated counts b = d N0 per ray.
    The counts are drawn image by image in batch order (``per_image_noise``).
    """
    blank = blank.view(-1, 1, 1)
    counts = per_image_noise("poisson", sino.shape[0], (), generator, sino.device,
                             rates=blank * torch.exp(-sino)).clamp_min_(1.0)
    return torch.log(blank) - torch.log(counts)


def reconstruct_hu(sino: torch.Tensor, clean: torch.Tensor, spacing_mm: torch.Tensor, circle: bool) -> torch.Tensor:
    """FBP of line integrals (B, V, L) in mm back to HU, (B, 1, H, W) like ``clean``.

    With ``circle``, pixels outside the reconstruction disk keep the clean values.
    """
    height, width = clean.shape[-2:]
    hu = mu_to_hu(fbp(sino, (height, width), circle) / spacing_mm.view(-1, 1, 1)).unsqueeze(1)
    if circle:
        hu = torch.where(circle_mask(height, width, clean.device), hu, clean)
    return hu


class CTLowDose(Degradation):
    """Low-dose CT at dose fraction ``d`` (1 = 1e6 photons per ray); clean/noisy (B, 1, H, W) in HU.

    ``spacing_mm`` (float or (B,)) sets the pixel size; the line integrals, hence the noise,
    depend on it. The first call for a new image size builds and caches the projection
    matrices (about 10 s at 512 x 512, 1.4 GB; see ``durr.degrade.radon``).

    Examples
    --------
    >>> deg = CTLowDose()
    >>> hu = torch.full((1, 1, 64, 64), -1000.0); hu[..., 16:48, 16:48] = 0.0
    >>> out = deg(hu, 0.25, generator=torch.Generator().manual_seed(0), spacing_mm=0.7)
    >>> out.noisy.shape, out.reference.shape
    (torch.Size([1, 1, 64, 64]), torch.Size([1, 1, 64, 64]))
    """

    name = "ct-lowdose"
    modality = "CT"
    level_unit = "dose fraction d (1 = full dose of 1e6 photons per ray; smaller is noisier)"
    seen = (0.1, 0.5)
    unseen = (0.05, 0.025)
    n_views = FULL_VIEWS
    photons = PHOTONS

    def severity(self, level) -> torch.Tensor:
        """1 / sqrt(d): proportional to the noise std."""
        return torch.as_tensor(level, dtype=torch.float64).clamp_min(1e-6).rsqrt()

    def level_of_severity(self, severity) -> torch.Tensor:
        return torch.as_tensor(severity, dtype=torch.float64).pow(-2.0)

    def __init__(self, circle: bool = False):
        super().__init__()
        self.circle = bool(circle)

    def degrade(self, clean, levels, generator, spacing_mm) -> Degraded:
        if (levels <= 0).any():
            raise ValueError(f"{self.name}: the dose fraction must be > 0, got {levels.tolist()}")
        batch = clean.shape[0]
        sino = line_integrals(clean, spacing_mm, self.n_views, self.circle)   # (B, V, 2T+1)
        noisy_sino = prelog_poisson(sino, self.photons * levels, generator)
        # one FBP for noisy and reference together: (2B, 1, H, W)
        hu = reconstruct_hu(torch.cat((noisy_sino, sino)), clean.repeat(2, 1, 1, 1), spacing_mm.repeat(2),
                            self.circle)
        return Degraded(hu[:batch], hu[batch:])
