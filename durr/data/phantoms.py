"""Random CT-like phantoms in Hounsfield units.

Real CT is scarce offline, so the CT training set is mostly synthetic. A phantom is an axial
body section: an elliptical body with a subcutaneous fat layer, soft-tissue organs, fat, a
vertebra with cortical and cancellous bone, ribs, lungs or bowel gas, and a faint smooth
texture, at a realistic pixel spacing so that FBP noise reaches the levels real scans show.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AIR_HU = -1000.0


def _ellipse_mask(shape: tuple[int, int], center: tuple[float, float], axes: tuple[float, float],
                  angle: float) -> np.ndarray:
    """Boolean (H, W) mask of an ellipse; center and axes in pixels, angle in radians."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dr, dc = rows - center[0], cols - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u = (dc * cos + dr * sin) / axes[1]
    v = (-dc * sin + dr * cos) / axes[0]
    return u * u + v * v <= 1.0


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field, shape (H, W)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px)
    return field / (field.std() + 1e-8)


def random_ct_phantom(rng: np.random.Generator, size: int = 512,
                      spacing_mm: float = 0.7) -> np.ndarray:
    """One random axial body phantom.

    Parameters
    ----------
    rng : numpy Generator (the phantom is a deterministic function of its state).
    size : image side in pixels.
    spacing_mm : pixel spacing; anatomy is drawn in millimetres, so a smaller spacing
        gives a larger body in pixels (and more FBP noise per pixel at a given dose).

    Returns
    -------
    np.ndarray, float32, shape (size, size), in HU (air -1000, fat about -100,
    soft tissue 20-70, bone 200-1200).

    Examples
    --------
    >>> hu = random_ct_phantom(np.random.default_rng(0), size=256, spacing_mm=1.4)
    >>> hu.shape, float(hu.min()) >= -1024
    ((256, 256), True)
    """
    shape = (size, size)
    mm = 1.0 / spacing_mm  # pixels per millimetre
    fov_mm = size * spacing_mm
    image = np.full(shape, AIR_HU, dtype=np.float32)
    c = (size / 2 + rng.uniform(-0.03, 0.03) * size, size / 2 + rng.uniform(-0.03, 0.03) * size)

    # Body: half-width 120-175 mm, half-depth 80-125 mm, limited to the field of view.
    half_w = min(rng.uniform(120, 175), 0.47 * fov_mm)
    half_d = min(rng.uniform(80, 125), 0.40 * fov_mm)
    angle = rng.uniform(-0.08, 0.08)
    body = _ellipse_mask(shape, c, (half_d * mm, half_w * mm), angle)
    fat_mm = rng.uniform(5, 30)
    inner = _ellipse_mask(shape, c, ((half_d - fat_mm) * mm, (half_w - fat_mm) * mm), angle)
    image[body] = rng.uniform(-120, -80)  # subcutaneous fat
    image[inner] = rng.uniform(30, 50)    # muscle / soft tissue

    thorax = rng.random() < 0.5
    inner_d, inner_w = half_d - fat_mm, half_w - fat_mm
    if thorax:  # two lungs with vessels
        for side in (-1, 1):
            lc = (c[0] - 0.1 * inner_d * mm, c[1] + side * 0.45 * inner_w * mm)
            lung = _ellipse_mask(shape, lc, (0.65 * inner_d * mm, 0.35 * inner_w * mm),
                                 rng.uniform(-0.3, 0.3)) & inner
            image[lung] = rng.uniform(-880, -820)
            for _ in range(rng.integers(10, 30)):
                vc = (lc[0] + rng.uniform(-0.5, 0.5) * inner_d * mm,
                      lc[1] + rng.uniform(-0.25, 0.25) * inner_w * mm)
                r = rng.uniform(1, 4) * mm
                vessel = _ellipse_mask(shape, vc, (r, r * rng.uniform(0.6, 1.6)), rng.uniform(0, 3.2))
                image[vessel & lung] = rng.uniform(20, 60)
    # Organs (liver, kidneys, heart, ...) and fat pockets.
    for _ in range(rng.integers(3, 8)):
        oc = (c[0] + rng.uniform(-0.5, 0.5) * inner_d * mm, c[1] + rng.uniform(-0.6, 0.6) * inner_w * mm)
        axes = (rng.uniform(10, 0.45 * inner_d) * mm, rng.uniform(10, 0.35 * inner_w) * mm)
        organ = _ellipse_mask(shape, oc, axes, rng.uniform(0, np.pi)) & inner
        if thorax:
            organ &= image > -500
        image[organ] = rng.choice([rng.uniform(40, 70), rng.uniform(-110, -70), rng.uniform(10, 30)])
    # Bowel gas (abdomen only).
    if not thorax:
        for _ in range(rng.integers(0, 6)):
            gc = (c[0] + rng.uniform(-0.4, 0.3) * inner_d * mm, c[1] + rng.uniform(-0.5, 0.5) * inner_w * mm)
            r = rng.uniform(4, 18) * mm
            image[_ellipse_mask(shape, gc, (r, r * rng.uniform(0.5, 1.5)), rng.uniform(0, 3.2)) & inner] = AIR_HU
    # Vertebra: cortical ring around cancellous bone, posterior, plus a spinal canal.
    vc = (c[0] + 0.55 * inner_d * mm, c[1])
    vr = rng.uniform(14, 22) * mm
    image[_ellipse_mask(shape, vc, (vr, vr * 1.1), 0.0)] = rng.uniform(700, 1200)
    image[_ellipse_mask(shape, vc, (0.8 * vr, 0.88 * vr), 0.0)] = rng.uniform(150, 350)
    canal = (vc[0] + 1.3 * vr, vc[1])
    image[_ellipse_mask(shape, canal, (0.35 * vr, 0.4 * vr), 0.0)] = rng.uniform(0, 20)
    # Ribs (thorax) as small bony ellipses near the body wall.
    if thorax:
        for t in rng.uniform(0, 2 * np.pi, size=rng.integers(6, 14)):
            rc = (c[0] + 0.9 * inner_d * mm * np.sin(t), c[1] + 0.92 * inner_w * mm * np.cos(t))
            rib = _ellipse_mask(shape, rc, (rng.uniform(3, 6) * mm, rng.uniform(6, 12) * mm), t)
            image[rib & body] = rng.uniform(400, 900)

    # Faint anatomical texture inside the body, then partial-volume blur at edges.
    texture = rng.uniform(3, 12) * _smooth_field(rng, shape, rng.uniform(1.5, 4.0) * mm)
    image[body & (image > -500)] += texture[body & (image > -500)]
    image = ndimage.gaussian_filter(image, rng.uniform(0.4, 0.9))
    return np.clip(image, -1024.0, 3071.0).astype(np.float32)
