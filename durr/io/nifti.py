"""NIfTI-1/NIfTI-2 in and out (``.nii`` and ``.nii.gz``, 2D and 3D).

Axis convention: NIfTI stores ``data[i, j, k]`` (i fastest on disk). The scan array is that
data with its axes reversed, ``array[k, j, i] = data[i, j, k]``: shape (Z, H, W) = (nk, nj, ni)
for a volume, (H, W) = (nj, ni) for a 2D image. So slices are NIfTI's third axis, rows its
second, columns its first, and ``Scan.affine`` (the header's best affine, unchanged) maps
``(column, row, slice, 1)`` to RAS+ mm exactly as nibabel's affine maps ``(i, j, k, 1)``.
Viewers that put the anterior side up may need ``np.flipud`` on a slice of a RAS volume.

Values are ``stored * scl_slope + scl_inter`` (slope 1, intercept 0 when unset), as float32.
Trailing axes of length 1 (shape (X, Y, Z, 1)) are accepted; anything 4D with more than one
volume is refused.

Writing keeps the source header byte for byte (dtype, scl_slope/scl_inter, qform/sform,
extensions, description): values are mapped back through the header's scaling and, for
integer dtypes, rounded with the overflow policy of ``durr.io.values``. The data is written
directly after nibabel writes the header, because nibabel's own writer recomputes scaling.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from durr.errors import ScanError
from durr.io.atomic import atomic_file
from durr.io.scan import Scan
from durr.io.values import check_finite, quantise

SUFFIXES = (".nii", ".nii.gz")


def is_nifti_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _core_shape(shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    """Shape without trailing length-1 axes beyond the third; refuses 1D and true 4D+."""
    core = tuple(shape[:3])
    extra = shape[3:]
    if any(n != 1 for n in extra):
        raise ScanError(path, f"{len(shape)}D NIfTI (shape {tuple(shape)}); only 2D images and 3D "
                              "volumes are supported, split the extra axis first")
    if len(core) < 2:
        raise ScanError(path, f"NIfTI with shape {tuple(shape)} is not an image (2D or 3D needed)")
    return core


def load_image(path: Path):
    """The nibabel image, with a ``ScanError`` for anything unreadable."""
    try:
        img = nib.load(str(path))
    except FileNotFoundError:
        raise ScanError(path, "no such file") from None
    except Exception as err:
        raise ScanError(path, f"not a readable NIfTI file ({str(err).strip() or type(err).__name__})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ScanError(path, f"{type(img).__name__} is not a single-file NIfTI image")
    return img


def probe_nifti(path: Path) -> None:
    """Check the header only (cheap): readable, 2D/3D, numeric greyscale."""
    img = load_image(path)
    _core_shape(img.shape, path)
    _check_dtype(img.get_data_dtype(), path)


def _check_dtype(dtype: np.dtype, path: Path) -> None:
    if dtype.kind not in "iuf":
        what = "colour (RGB)" if dtype.fields else str(dtype)
        raise ScanError(path, f"NIfTI data type {what} is not supported; a greyscale image is needed")


def _disk_header(img, path: Path):
    """The header exactly as stored (nibabel's ``img.header`` has scl_slope/inter reset to NaN)."""
    with nib.openers.ImageOpener(str(path)) as f:
        return type(img.header).from_fileobj(f)


def read_nifti(path: str | Path, modality: str | None = None) -> Scan:
    """Read a ``.nii``/``.nii.gz`` file.

    Returns
    -------
    Scan with array (Z, H, W) (or (H, W) for a 2D file), spacing reversed from the header's
    zooms, the header's affine, modality ``modality`` or "OT", source_format "nifti".
    """
    path = Path(path)
    img = load_image(path)
    shape = tuple(int(n) for n in img.shape)
    core = _core_shape(shape, path)
    _check_dtype(img.get_data_dtype(), path)
    try:
        raw = np.asanyarray(img.dataobj.get_unscaled()).reshape(core)
    except Exception as err:
        raise ScanError(path, f"truncated or corrupt NIfTI data ({str(err).strip() or type(err).__name__})") from None
    slope, inter = float(img.dataobj.slope), float(img.dataobj.inter)
    values = raw.astype(np.float64) * slope + inter if (slope, inter) != (1.0, 0.0) else raw
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float32).transpose())
    check_finite(array, path)
    zooms = tuple(float(z) for z in img.header.get_zooms()[: len(core)])
    meta = {"header": _disk_header(img, path), "shape": shape, "slope": slope, "inter": inter}
    return Scan(array, modality or "OT", zooms[::-1], np.array(img.affine, dtype=np.float64),
                "nifti", str(path), meta)


def write_nifti(scan: Scan, path: str | Path, like: Scan, clip: bool = False) -> Path:
    """Write ``scan.array`` as NIfTI at ``path`` with the header of ``like`` (gzip if ``.gz``)."""
    path = Path(path)
    hdr = like.meta["header"].copy()
    slope, inter = like.meta["slope"], like.meta["inter"]
    dtype = hdr.get_data_dtype()
    data = np.asarray(scan.array, dtype=np.float64).transpose().reshape(like.meta["shape"])
    if (slope, inter) != (1.0, 0.0):
        data = (data - inter) / slope
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        ends = sorted((info.min * slope + inter, info.max * slope + inter))
        codes = quantise(data, dtype, info.min, info.max, path=path, clip=clip,
                         unit_range=f"{ends[0]:g} to {ends[1]:g} for {dtype.name} data")
    else:
        codes = data.astype(dtype)
    with atomic_file(path) as f:
        out = gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=6) if path.name.lower().endswith(".gz") else f
        hdr.write_to(out)
        pad = int(hdr.get_data_offset()) - out.tell()
        out.write(b"\0" * max(pad, 0))
        out.write(codes.tobytes(order="F"))
        if out is not f:
            out.close()
    return path
