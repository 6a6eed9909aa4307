"""Parallel-beam Radon transform and filtered back-projection in torch, batched.

Geometry (scikit-image's ``radon``/``iradon``, with ``circle=True`` or ``circle=False``)
----------------------------------------------------------------------------------------
An image of shape (H, W) rotates about the pixel ``(H // 2, W // 2)``. With pixel offsets
``X = col - W // 2`` and ``Y = row - H // 2``, view ``j`` has the angle
``theta_j = j * 180 / n_views`` degrees and its ray ``t`` is the line

    X cos(theta) - Y sin(theta) = t,        t = -T, ..., T,

so a sinogram has shape (..., n_views, 2T + 1) and detector bin ``T`` is the rotation axis.
What is seen (the *support*) and ``T`` depend on ``circle``:

- ``circle=True``: the disk ``X^2 + Y^2 <= R^2`` inscribed in the image, ``R = min(H, W) // 2``,
  ``T = R``. The image is taken as zero outside the disk and ``fbp`` returns 0 there
  (``circle_mask`` gives the disk).
- ``circle=False``: the whole image. The support is the square ``|X|, |Y| <= R`` with
  ``R = max(H, W) // 2`` and the detector spans its diagonal, ``T = ceil(R sqrt 2)``; every pixel
  is reconstructed (scikit-image pads to the diagonal the same way).

Discretisation
--------------
- Forward (``radon``): Joseph's method. A ray of a view with ``|cos| >= |sin|`` is walked row
  by row; in each row the image is interpolated linearly between the two nearest pixels and
  weighted by the path length ``1 / |cos(theta)|``. scikit-image instead sums bilinear
  samples at unit steps along the ray; on a phantom the two agree to about 1% (see the tests).
- Ramp filter: scikit-image's ``filter_name='ramp'`` (Kak & Slaney eq. 61: the spatial kernel
  ``h[0] = 1/4, h[n odd] = -1/(pi n)^2`` transformed, times 2), applied by FFT after zero
  padding each projection to ``max(64, 2**ceil(log2(2 * n_det)))`` samples, so the circular
  convolution equals the linear one on the detector.
- Back-projection (``fbp``): each disk pixel samples the filtered projection at
  ``t = X cos(theta) - Y sin(theta)`` with linear interpolation; the sum over views is scaled
  by ``pi / (2 n_views)``. This is scikit-image's ``iradon`` (to float32 rounding).

Speed
-----
Both operators are sparse matrices (int32 CSR), built once per ``(R, circle, n_views,
device)`` and cached; least recently used geometries are dropped beyond 3 GB (environment
variable ``DURR_RADON_CACHE_GB``). The lattice ``{-R..R}^2`` and the support are invariant
under the rotation by 90 degrees ``(X, Y) -> (-Y, X)`` and the mirror ``(X, Y) -> (-X, Y)``,
which map the view ``theta`` onto ``theta + 90``, ``180 - theta`` and ``90 - theta`` with the
same ``t``. So the matrices hold only the views in [0, 45] degrees (a quarter) and are applied
to four permuted copies of the image (forward) or of the sinogram (back-projection), which
become the columns of one sparse-dense product together with the batch (on the CPU in groups
of 8 columns: MKL's product slows down per column beyond that).

The symmetry saves memory and build time, not arithmetic. At 512 x 512 with ``circle=False``
the operators hold 85 and 95 million nonzeros (1.45 GB together, built in 10-15 s of one CPU
core; ``prepare`` builds them ahead, ``clear_cache`` frees them), and each of the 4 columns of
an image costs as many multiply-adds. The forward product is the slower one per column: a ray
crosses the whole image, so every view streams the image through the cache, while neighbouring
pixels of the back-projection reuse the same detector bins; so the forward matrix is cut into
vertical strips of 16384 pixels whose slice of the image stays in cache (3x faster).
``circle=True`` costs about 20% less. The build runs with one torch thread (thousands of small
memory-bound steps, which an OpenMP team on a shared CPU slows down tenfold) and restores the
thread count after. ``n_views`` must be even.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch

__all__ = ["radon", "fbp", "ramp_filter", "circle_mask", "detector_size", "angles_deg", "prepare",
           "clear_cache"]

_CACHE_BYTES = int(float(os.environ.get("DURR_RADON_CACHE_GB", "3")) * 2**30)  # LRU budget
_COLUMNS = 8             # dense columns per CPU sparse product (slower per column beyond ~8)
_CHUNK = 1 << 18         # entries built per step while assembling a matrix (cache-sized)
_STRIP = 1 << 14         # pixels per strip of the forward matrix (its operand slice fits cache)
_ops_cache: "OrderedDict[tuple, _Operators]" = OrderedDict()
_lock = threading.Lock()


def _extent(height: int, width: int, circle: bool) -> tuple[int, int]:
    """(R, T): half-size of the support lattice and of the detector (see module doc)."""
    if circle:
        radius = min(height, width) // 2
        return radius, radius
    radius = max(height, width) // 2
    return radius, math.ceil(radius * math.sqrt(2) - 1e-9)


def detector_size(height: int, width: int, circle: bool = True) -> int:
    """Number of detector bins ``2T + 1`` for an (H, W) image (see module doc)."""
    return 2 * _extent(height, width, circle)[1] + 1


def angles_deg(n_views: int) -> torch.Tensor:
    """View angles in degrees, ``j * 180 / n_views`` for j = 0..n_views-1 (float64)."""
    return torch.arange(n_views, dtype=torch.float64) * (180.0 / n_views)


def circle_mask(height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (H, W) mask of the reconstruction disk ``X^2 + Y^2 <= R^2`` (see module doc)."""
    radius = min(height, width) // 2
    y = torch.arange(height, device=device) - height // 2
    x = torch.arange(width, device=device) - width // 2
    return (y[:, None] ** 2 + x[None, :] ** 2) <= radius**2


@dataclass
class _Operators:
    """Everything cached for one (R, circle, n_views, device); L = 2T + 1 detector bins."""

    radius: int
    half_width: int              # T
    n_views: int
    forward: list                # CSR (n_base * L, strip) each: Joseph projector, by pixel strip
    backward: torch.Tensor       # CSR (P, n_base * L): linear-interpolation back-projector
    targets: torch.Tensor        # (4, n_base) long: view made by each symmetry, -1 if none
    gather_in: torch.Tensor      # (4, P) long: f o g^-1 as disk indices (forward inputs)
    gather_out: torch.Tensor     # (4, P) long: g(p) as disk indices (back-projection outputs)
    disk_yx: torch.Tensor        # (P, 2) long: (Y, X) offsets of the support pixels (X-major)


def prepare(height: int, width: int, n_views: int = 720, circle: bool = True,
            device: torch.device | str = "cpu") -> None:
    """Build and cache the operators for (H, W) images now (e.g. before forking data-loader
    workers, which then share the matrices copy-on-write instead of each building its own)."""
    _operators(height, width, circle, n_views, torch.device(device))


def clear_cache() -> None:
    """Drop the cached projection matrices (they are rebuilt on the next call)."""
    with _lock:
        _ops_cache.clear()


def _symmetry_orbits(n_views: int) -> torch.Tensor:
    """(4, n_base) target views of each base view under the four symmetries, -1 where none.

    Row 0 is the identity, 1 the rotation ``g(X, Y) = (-Y, X)`` (theta -> theta + 90), 2 the
    mirror ``(-X, Y)`` (theta -> 180 - theta), 3 their product ``(-Y, -X)`` (theta -> 90 - theta).
    A target at 180 degrees (the view 0 with ``t`` reversed) or a view already covered is -1.
    """
    half = n_views // 2
    covered = [False] * n_views
    columns = []
    for j in range(n_views):
        if covered[j]:
            continue
        cand = [j, j + half, n_views - j, half - j]
        col = []
        for v in cand:
            if 0 <= v < n_views and not covered[v]:
                covered[v] = True
                col.append(v)
            else:
                col.append(-1)
        columns.append(col)
    assert all(covered)
    return torch.tensor(columns, dtype=torch.long).T.contiguous()


@functools.lru_cache(maxsize=8)
def _ramp_rfft(n_fft: int) -> torch.Tensor:
    """scikit-image's ramp filter for an FFT of length ``n_fft``, as rfft weights (float64, CPU)."""
    n = torch.cat((torch.arange(1, n_fft // 2 + 1, 2), torch.arange(n_fft // 2 - 1, 0, -2)))
    h = torch.zeros(n_fft, dtype=torch.float64)
    h[0] = 0.25
    h[1::2] = -1.0 / (math.pi * n.double()) ** 2
    return 2.0 * torch.fft.rfft(h).real                               # (n_fft // 2 + 1,)


def _build(radius: int, half_width: int, circle: bool, n_views: int, device: torch.device) -> _Operators:
    if n_views < 2 or n_views % 2:
        raise ValueError(f"n_views must be even and >= 2, got {n_views}")
    if radius < 1:
        raise ValueError(f"images must be at least 2 x 2 pixels (radius {radius})")
    size = 2 * radius + 1                      # support lattice -R..R
    n_det = 2 * half_width + 1                 # detector -T..T
    # Support pixels in column-major order (X outer, Y inner): the base views' rays run
    # within 45 degrees of the Y axis, so consecutive taps of a ray are mostly adjacent in
    # memory (2-3x faster products than row-major). lut[Y + R, X + R] = support index or -1.
    k = torch.arange(-radius, radius + 1, device=device)
    xx, yy = torch.meshgrid(k, k, indexing="ij")                     # (X, Y) grids
    inside = (yy**2 + xx**2 <= radius**2) if circle else torch.ones_like(yy, dtype=torch.bool)
    n_pix = int(inside.sum())
    ys, xs = yy[inside], xx[inside]                                   # (P,), X-major
    lut = torch.full((size, size), -1, dtype=torch.long, device=device)
    lut[ys + radius, xs + radius] = torch.arange(n_pix, device=device)

    def disk_index(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return lut[y + radius, x + radius]

    # g(p) for the four symmetries, and g^-1(p)
    g_out = torch.stack([disk_index(ys, xs), disk_index(xs, -ys), disk_index(ys, -xs), disk_index(-xs, -ys)])
    g_in = torch.stack([disk_index(ys, xs), disk_index(-xs, ys), disk_index(ys, -xs), disk_index(-xs, -ys)])

    targets = _symmetry_orbits(n_views).to(device)
    base = targets[0]
    theta = base.double() * (math.pi / n_views)                       # radians, all in [0, pi/4]
    assert float(theta.max()) <= math.pi / 4 + 1e-12
    cos, sin = torch.cos(theta), torch.sin(theta)
    n_base = base.numel()
    if 2 * n_pix * n_base >= 2**31:
        raise ValueError(f"radius {radius} with {n_views} views is too large for 32-bit sparse indices")

    # ---- forward: Joseph, rays (view b, bin t) walk rows Y; X = (t + Y sin) / cos ----
    # Only the rows where the ray is within a pixel of the support are visited (a ragged set:
    # the chord, in Y, of the support's circumscribed disk grown by 1, plus one row each side).
    lut_pad = torch.full((size, size + 4), -1, dtype=torch.long, device=device)
    lut_pad[:, 2:-2] = lut                     # 2 pad columns each side for clamped x0, x0 + 1
    lut_flat = lut_pad.reshape(-1)
    # The matrix is cut into strips of _STRIP pixel columns (vertical image strips): a strip's
    # slice of the dense operand stays in cache while its rays are summed (~3x faster).
    n_strips = -(-n_pix // _STRIP)
    strip_cols = [[] for _ in range(n_strips)]
    strip_vals = [[] for _ in range(n_strips)]
    strip_counts = [[] for _ in range(n_strips)]
    outer = (radius if circle else radius * math.sqrt(2)) + 1.0
    bins = torch.arange(-half_width, half_width + 1, device=device, dtype=torch.float64)
    step = max(1, _CHUNK // (2 * size * n_det))
    for b0 in range(0, n_base, step):
        c = cos[b0:b0 + step, None].expand(-1, n_det).reshape(-1)                # (rays,)
        s = sin[b0:b0 + step, None].expand(-1, n_det).reshape(-1)
        t = bins[None, :].expand(c.numel() // n_det, -1).reshape(-1)
        n_rays = t.numel()
        half = torch.sqrt((outer**2 - t**2).clamp_min(0.0)) * c + 1.0
        y_lo = torch.ceil(-t * s - half).clamp_(-radius, radius).long()
        y_hi = torch.floor(-t * s + half).clamp_(-radius, radius).long()
        n_rows = (y_hi - y_lo + 1).clamp_(min=0)
        ray = torch.repeat_interleave(torch.arange(n_rays, device=device), n_rows)  # (rows,)
        start = torch.cumsum(n_rows, 0) - n_rows
        y = y_lo[ray] + torch.arange(ray.numel(), device=device) - start[ray]        # (rows,)
        cr = c[ray]
        x = (t[ray] + y * s[ray]) / cr
        x0 = torch.floor(x)
        w = (x - x0).float()
        flat = (y + radius) * (size + 4) + 2 + radius + x0.long().clamp_(-radius - 2, radius + 1)
        cols = torch.stack((lut_flat[flat], lut_flat[flat + 1]), 1)               # (rows, 2)
        vals = torch.stack((1.0 - w, w), 1) / cr.float()[:, None]
        nz = ((cols >= 0) & (vals > 0)).reshape(-1).nonzero().squeeze(1)  # faster than a mask
        cols, vals = cols.reshape(-1)[nz], vals.reshape(-1)[nz]              # (entries,)
        ray = ray.repeat_interleave(2)[nz]
        strip = torch.div(cols, _STRIP, rounding_mode="floor")
        order = torch.argsort(strip, stable=True)          # by strip, ray order kept within
        counts = torch.bincount(strip * n_rays + ray, minlength=n_strips * n_rays).view(n_strips, n_rays)
        sizes = counts.sum(1).tolist()
        for k, (ck, vk) in enumerate(zip(torch.split((cols - strip * _STRIP)[order].int(), sizes),
                                         torch.split(vals[order], sizes))):
            strip_cols[k].append(ck)
            strip_vals[k].append(vk)
            strip_counts[k].append(counts[k])
        del ray, y, x, x0, w, flat, cols, vals, nz, strip, order
    forward = []
    for k in range(n_strips):
        crow = torch.zeros(n_base * n_det + 1, dtype=torch.long, device=device)
        crow[1:] = torch.cumsum(torch.cat(strip_counts[k]), 0)
        width = min(_STRIP, n_pix - k * _STRIP)
        forward.append(_csr(crow, torch.cat(strip_cols[k]), torch.cat(strip_vals[k]), (n_base * n_det, width)))
        strip_cols[k] = strip_vals[k] = None

    # ---- back-projection: pixel p, base view b: t = X cos - Y sin, linear in t ----
    # |t| <= T on the support, so the two bins k0, k0 + 1 always exist
    cols_all = torch.empty(n_pix, n_base, 2, dtype=torch.int32, device=device)
    vals_all = torch.empty(n_pix, n_base, 2, dtype=torch.float32, device=device)
    step = max(1, _CHUNK // (2 * n_base))
    offsets = (torch.arange(n_base, device=device, dtype=torch.int32) * n_det)[None, :]
    coef = torch.stack((cos, -sin, torch.full_like(cos, float(half_width))))  # (3, b)
    pix = torch.stack((xs.double(), ys.double(), torch.ones_like(xs, dtype=torch.float64)), 1)
    for p0 in range(0, n_pix, step):
        t = (pix[p0:p0 + step] @ coef).clamp_(0.0, 2 * half_width - 1e-6)  # (p, b) in [0, 2T)
        w = torch.frac(t).float()
        k0 = t.floor_().int() + offsets
        cols_all[p0:p0 + step, :, 0] = k0
        cols_all[p0:p0 + step, :, 1] = k0 + 1
        vals_all[p0:p0 + step, :, 0] = 1.0 - w
        vals_all[p0:p0 + step, :, 1] = w
    crow = torch.arange(n_pix + 1, dtype=torch.long, device=device) * (2 * n_base)
    backward = _csr(crow, cols_all.reshape(-1), vals_all.reshape(-1), (n_pix, n_base * n_det))
    del cols_all, vals_all
    return _Operators(radius, half_width, n_views, forward, backward, targets, g_in, g_out,
                      torch.stack((ys, xs), 1))


def _csr(crow: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """An int32 CSR matrix (MKL/cuSPARSE take 32-bit indices, half the memory of 64-bit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow.int(), cols.int(), vals.float(), size=shape,
                                       device=vals.device, check_invariants=False)


def _operators(height: int, width: int, circle: bool, n_views: int, device: torch.device) -> _Operators:
    radius, half_width = _extent(height, width, circle)
    key = (radius, bool(circle), n_views, str(device))
    with _lock:
        ops = _ops_cache.get(key)
        if ops is not None:
            _ops_cache.move_to_end(key)
            return ops
        # Thousands of small memory-bound steps: one thread is as fast, and avoids the
        # stalls of an OpenMP team on a shared, oversubscribed CPU (10x slower seen).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            ops = _build(radius, half_width, bool(circle), n_views, device)
        finally:
            torch.set_num_threads(threads)
        _ops_cache[key] = ops
        while len(_ops_cache) > 1 and sum(map(_nbytes, _ops_cache.values())) > _CACHE_BYTES:
            _ops_cache.popitem(last=False)             # least recently used first
        return ops


def _nbytes(ops: _Operators) -> int:
    """Memory held by the sparse matrices of one geometry."""
    return sum(m.values().numel() * 8 + m.crow_indices().numel() * 4 for m in [*ops.forward, ops.backward])


def _spmm(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` for a CSR matrix, in groups of ``_COLUMNS`` columns on the CPU."""
    if dense.device.type != "cpu" or dense.shape[1] <= _COLUMNS:
        return matrix @ dense
    return torch.cat([matrix @ dense[:, i:i + _COLUMNS].contiguous()
                      for i in range(0, dense.shape[1], _COLUMNS)], 1)


def _image_index(ops: _Operators, height: int, width: int) -> torch.Tensor:
    """(P,) flat index of each support pixel into an (H*W + 1) image whose last entry is 0."""
    row = ops.disk_yx[:, 0] + height // 2
    col = ops.disk_yx[:, 1] + width // 2
    ok = (row >= 0) & (row < height) & (col >= 0) & (col < width)   # lattice points off the image
    return torch.where(ok, row * width + col, height * width)


def _check(images: torch.Tensor, name: str, ndim_min: int = 2) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim < ndim_min or not images.is_floating_point():
        raise ValueError(f"{name}: expected a floating tensor with >= {ndim_min} dims, got "
                         f"{tuple(images.shape)} {images.dtype}")


def radon(images: torch.Tensor, n_views: int = 720, circle: bool = True) -> torch.Tensor:
    """Parallel-beam Radon transform, in pixel units.

    Parameters
    ----------
    images : tensor (..., H, W), float.
    n_views : number of views, even, angles ``j * 180 / n_views`` degrees.
    circle : True: only the inscribed disk is seen (the image is taken as zero outside it);
        False: the whole image (see module doc).

    Returns
    -------
    sinogram : tensor (..., n_views, 2T + 1), float32, ``p(theta, t) = sum over the ray`` with
        unit pixel length (multiply by the pixel spacing for millimetres).

    Examples
    --------
    >>> img = torch.zeros(1, 64, 64); img[0, 24:40, 24:40] = 1
    >>> radon(img, 180).shape, radon(img, 180, circle=False).shape
    (torch.Size([1, 180, 65]), torch.Size([1, 180, 93]))
    """
    _check(images, "radon")
    *lead, height, width = images.shape
    ops = _operators(height, width, circle, n_views, images.device)
    flat = images.reshape(-1, height * width).float()
    n_img = flat.shape[0]
    flat = torch.cat((flat, flat.new_zeros(n_img, 1)), 1)             # slot H*W is 0
    disk = flat[:, _image_index(ops, height, width)]                   # (B, P)
    inputs = disk[:, ops.gather_in]                                    # (B, 4, P): f o g^-1
    inputs = inputs.permute(2, 1, 0).reshape(disk.shape[1], 4 * n_img)  # (P, 4B)
    n_det = 2 * ops.half_width + 1
    n_base = ops.targets.shape[1]
    proj = _spmm(ops.forward[0], inputs[:_STRIP])
    for k in range(1, len(ops.forward)):
        proj += _spmm(ops.forward[k], inputs[k * _STRIP:(k + 1) * _STRIP])
    proj = proj.reshape(n_base, n_det, 4, n_img)                          # (base, t, sym, B)
    sino = proj.new_zeros(n_views, n_det, n_img)
    for sym in range(4):
        valid = ops.targets[sym] >= 0
        sino[ops.targets[sym][valid]] = proj[valid, :, sym, :]
    return sino.permute(2, 0, 1).reshape(*lead, n_views, n_det)


def ramp_filter(sinogram: torch.Tensor) -> torch.Tensor:
    """Ramp-filter each projection (last axis) as scikit-image's ``iradon(filter_name='ramp')``.

    ``q = irfft(rfft(p, n_fft) * H)[:n_det]`` with the zero padding of the module doc.
    Input and output (..., n_views, n_det).
    """
    _check(sinogram, "ramp_filter")
    n_det = sinogram.shape[-1]
    n_fft = max(64, 2 ** math.ceil(math.log2(2 * n_det)))
    ramp = _ramp_rfft(n_fft).to(sinogram.device, torch.float32)
    spec = torch.fft.rfft(sinogram.float(), n=n_fft, dim=-1) * ramp
    return torch.fft.irfft(spec, n=n_fft, dim=-1)[..., :n_det]


def fbp(sinogram: torch.Tensor, shape: tuple[int, int], circle: bool = True,
        filtered: bool = False) -> torch.Tensor:
    """Filtered back-projection onto an (H, W) image.

    Parameters
    ----------
    sinogram : tensor (..., n_views, 2T + 1) in the geometry of ``radon`` (pixel units).
    shape : (H, W) of the image; ``detector_size(H, W, circle)`` must be 2T + 1.
    circle : True: reconstruct the inscribed disk, 0 outside it; False: every pixel.
    filtered : True if ``sinogram`` is already ramp-filtered.

    Returns
    -------
    image : tensor (..., H, W), float32:
        ``f(X, Y) = pi / (2 n_views) * sum_theta q_theta(X cos(theta) - Y sin(theta))``.
    """
    _check(sinogram, "fbp")
    height, width = shape
    *lead, n_views, n_det = sinogram.shape
    if n_det != detector_size(height, width, circle):
        raise ValueError(f"fbp: sinogram has {n_det} bins, an image of shape {tuple(shape)} "
                         f"(circle={circle}) needs {detector_size(height, width, circle)}")
    ops = _operators(height, width, circle, n_views, sinogram.device)
    q = sinogram if filtered else ramp_filter(sinogram)
    q = q.reshape(-1, n_views, n_det).float()
    n_img = q.shape[0]
    q = torch.cat((q.permute(1, 2, 0), q.new_zeros(1, n_det, n_img)), 0)  # (V + 1, t, B), V is 0
    targets = torch.where(ops.targets >= 0, ops.targets, n_views)        # (4, base)
    stacked = q[targets.T]                                               # (base, 4, t, B)
    n_base = targets.shape[1]
    stacked = stacked.permute(0, 2, 1, 3).reshape(n_base * n_det, 4 * n_img)  # (base*t, 4B)
    back = _spmm(ops.backward, stacked).reshape(-1, 4, n_img)                # (P, 4, B)
    disk = sum(back[ops.gather_out[sym], sym, :] for sym in range(4))    # (P, B)
    disk = disk * (math.pi / (2 * n_views))
    out = disk.new_zeros(n_img, height * width + 1)
    out[:, _image_index(ops, height, width)] = disk.T
    return out[:, :-1].reshape(*lead, height, width)
