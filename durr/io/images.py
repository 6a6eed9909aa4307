"""Plain images in and out: PNG, TIFF (greyscale, 8/16-bit or float) and NPY arrays.

* PNG and TIFF with 8- or 16-bit greyscale samples become float32 in [0, 1] (code / 255 or
  code / 65535); the bit depth is kept in ``meta["bit_depth"]`` and written back the same,
  values rounded to the nearest code (overflow policy of ``durr.io.values``). Float TIFFs are
  read as is and written as float32. A multi-page TIFF is a volume (Z, H, W); TIFFs are
  written uncompressed.
* NPY: a 2D (H, W) or 3D (Z, H, W) real array, read as float32 as is, written as float32.
* Colour images (RGB, palette, grey+alpha) are refused: a greyscale image is needed. A
  bilevel PNG is read as 8-bit (0 or 1) and written back as 8-bit. TIFF MINISWHITE images
  are not inverted (their codes are read as stored) and are written back as MINISWHITE.

Images carry no geometry: spacing is 1 per axis and the affine is None.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from durr.errors import ScanError
from durr.io.atomic import atomic_file
from durr.io.scan import Scan
from durr.io.values import check_finite, quantise

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)

_MAX_CODE = {8: 255, 16: 65535}


def _error(path: Path, fmt: str, err: BaseException) -> ScanError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ScanError(path, f"not a readable {fmt} file ({reason})")


def _greyscale_codes(codes: np.ndarray, path: Path, fmt: str) -> tuple[np.ndarray, int]:
    """float32 image in [0, 1] (or as is for floats) and the bit depth (8, 16, or 32 for float)."""
    if codes.dtype == np.uint8:
        return codes.astype(np.float32) / 255.0, 8
    if codes.dtype == np.uint16:
        return codes.astype(np.float32) / 65535.0, 16
    if codes.dtype.kind == "f":
        return codes.astype(np.float32), 32
    raise ScanError(path, f"{fmt} sample type {codes.dtype} is not supported "
                          "(8- or 16-bit unsigned, or float)")


# --------------------------------------------------------------------------- PNG


def _open_png(path: Path):
    from PIL import Image
    try:
        img = Image.open(path)
        img.load()
    except Exception as err:
        raise _error(path, "PNG", err) from None
    return img


def _png_mode_problem(mode: str) -> str | None:
    """None for greyscale modes ("1" bilevel, "L" 8-bit, "I;16*"/"I" 16-bit), else the reason."""
    if mode in ("1", "L", "I") or mode.startswith("I;16"):
        return None
    what = {"LA": "greyscale with alpha (LA)", "P": "palette colour (P)"}.get(mode, f"colour ({mode})")
    return f"{what} image; a greyscale image is needed"


def _png_codes(img, path: Path) -> np.ndarray:
    """uint8 (H, W) for bilevel/8-bit images, uint16 for 16-bit ones (Pillow mode I;16 or I)."""
    problem = _png_mode_problem(img.mode)
    if problem:
        raise ScanError(path, problem)
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    return np.asarray(img).astype(np.uint16)   # PNG greyscale holds at most 16 bits


def probe_png(path: Path) -> None:
    """Check the PNG header only (cheap): readable and greyscale."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            mode = img.mode
    except Exception as err:
        raise _error(path, "PNG", err) from None
    problem = _png_mode_problem(mode)
    if problem:
        raise ScanError(path, problem)


def read_png(path: str | Path, modality: str | None = None) -> Scan:
    """Read an 8/16-bit greyscale PNG as (H, W) float32 in [0, 1]."""
    path = Path(path)
    with _open_png(path) as img:
        if getattr(img, "n_frames", 1) > 1:
            raise ScanError(path, "animated PNG; a single greyscale image is needed")
        codes = _png_codes(img, path)
    array, depth = _greyscale_codes(codes, path, "PNG")
    return Scan(array, modality or "OT", (1.0, 1.0), None, "png", str(path), {"bit_depth": depth})


def write_png(scan: Scan, path: str | Path, bit_depth: int, clip: bool = False) -> Path:
    """Write a 2D scan in [0, 1] as an 8- or 16-bit greyscale PNG."""
    from PIL import Image
    path = Path(path)
    if scan.array.ndim != 2:
        raise ScanError(path, f"PNG holds one 2D image, not shape {scan.array.shape}")
    bit_depth = bit_depth if bit_depth in _MAX_CODE else 8
    top = _MAX_CODE[bit_depth]
    codes = quantise(scan.array.astype(np.float64) * top, np.dtype(f"uint{bit_depth}"), 0, top,
                     path=path, clip=clip, unit_range=f"0 to 1 in {bit_depth}-bit")
    with atomic_file(path) as f:
        Image.fromarray(codes).save(f, format="PNG")
    return path


# --------------------------------------------------------------------------- TIFF


def read_tiff(path: str | Path, modality: str | None = None) -> Scan:
    """Read a greyscale TIFF: one page (H, W) or a stack (Z, H, W)."""
    import tifffile
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            spp, photometric = int(page.samplesperpixel), page.photometric
            codes = tif.asarray()
    except Exception as err:
        raise _error(path, "TIFF", err) from None
    _check_tiff_grey(spp, photometric, path)
    codes = np.squeeze(codes)
    if codes.ndim not in (2, 3):
        raise ScanError(path, f"TIFF of shape {codes.shape}; a 2D image or a 3D stack is needed")
    array, depth = _greyscale_codes(codes, path, "TIFF")
    check_finite(array, path)
    meta = {"bit_depth": depth, "photometric": photometric.name.lower()}
    return Scan(array, modality or "OT", (1.0,) * array.ndim, None, "tiff", str(path), meta)


def probe_tiff(path: Path) -> None:
    """Check the first TIFF page header only (cheap): readable and greyscale."""
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            spp, photometric = int(page.samplesperpixel), page.photometric
    except Exception as err:
        raise _error(path, "TIFF", err) from None
    _check_tiff_grey(spp, photometric, path)


def _check_tiff_grey(spp: int, photometric, path: Path) -> None:
    import tifffile
    grey = photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE)
    if spp != 1 or not grey:
        name = getattr(photometric, "name", photometric)
        raise ScanError(path, f"colour TIFF ({name}, {spp} samples per pixel); "
                              "a greyscale image is needed")


def write_tiff(scan: Scan, path: str | Path, bit_depth: int, clip: bool = False,
               photometric: str = "minisblack") -> Path:
    """Write an 8/16-bit (values in [0, 1]) or float32 greyscale TIFF, uncompressed."""
    import tifffile
    path = Path(path)
    if bit_depth in _MAX_CODE:
        top = _MAX_CODE[bit_depth]
        data = quantise(scan.array.astype(np.float64) * top, np.dtype(f"uint{bit_depth}"), 0, top,
                        path=path, clip=clip, unit_range=f"0 to 1 in {bit_depth}-bit")
    else:
        data = scan.array.astype(np.float32)
    with atomic_file(path) as f:
        tifffile.imwrite(f, data, photometric=photometric)
    return path


# --------------------------------------------------------------------------- NPY


def _check_npy(arr_shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    if dtype.kind not in "iuf":
        raise ScanError(path, f"NPY array of type {dtype} is not supported (a real numeric array is needed)")
    if len(arr_shape) not in (2, 3):
        raise ScanError(path, f"NPY array of shape {arr_shape}; a 2D (H, W) or 3D (Z, H, W) array is needed")
    if len(arr_shape) == 3 and arr_shape[-1] in (3, 4) and min(arr_shape[:2]) > 4:
        raise ScanError(path, f"NPY array of shape {arr_shape} looks like a colour (RGB) image; "
                              "a greyscale image is needed")


def probe_npy(path: Path) -> None:
    """Check the array header only (cheap)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise _error(path, "NPY", err) from None
    _check_npy(arr.shape, arr.dtype, path)


def read_npy(path: str | Path, modality: str | None = None) -> Scan:
    """Read a 2D (H, W) or 3D (Z, H, W) array as float32, values as is."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise _error(path, "NPY", err) from None
    if not isinstance(arr, np.ndarray):
        raise ScanError(path, "not a single NPY array")
    _check_npy(arr.shape, arr.dtype, path)
    check_finite(arr, path)
    array = np.ascontiguousarray(arr, dtype=np.float32)
    if array.dtype != arr.dtype and not np.all(np.isfinite(array)):
        raise ScanError(path, "values beyond the float32 range")
    return Scan(array, modality or "OT", (1.0,) * array.ndim, None, "npy", str(path), {})


def write_npy(scan: Scan, path: str | Path) -> Path:
    """Write the array as float32 NPY."""
    path = Path(path)
    with atomic_file(path) as f:
        np.save(f, np.asarray(scan.array, dtype=np.float32), allow_pickle=False)
    return path
