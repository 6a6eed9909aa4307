"""Checks on pixel values shared by every format: finiteness, and fitting a stored integer type.

Writing policy (all formats with integer storage: DICOM, integer NIfTI, PNG, TIFF):
values are rounded to the nearest stored code (``np.rint``, ties to even). A value that does
not fit the stored range is never clipped silently: by default ``save_scan`` raises a
``ScanError`` that counts the offending values and gives the range; with ``clip=True`` they
are clipped and a ``ClippedValuesWarning`` says how many and where.
"""

from __future__ import annotations

import warnings

import numpy as np

from durr.errors import ScanError


class ClippedValuesWarning(UserWarning):
    """``save_scan(..., clip=True)`` clipped values that did not fit the stored bit depth."""


def check_finite(array: np.ndarray, path) -> None:
    """Raise ``ScanError`` if ``array`` holds NaN or infinite values."""
    if array.dtype.kind == "f":
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ScanError(path, f"{bad} NaN or infinite pixel values; a scan must be finite")


def quantise(stored: np.ndarray, dtype: np.dtype, lo: float, hi: float, *, path, clip: bool,
             unit_range: str) -> np.ndarray:
    """Round float ``stored`` codes and cast to ``dtype``, enforcing ``lo <= code <= hi``.

    Parameters
    ----------
    stored : float array of codes, any shape (already ``(value - intercept) / slope``).
    dtype : integer dtype to return.
    lo, hi : the codes the stored bit depth can hold.
    path : the output file, for messages.
    clip : clip out-of-range codes (with a ``ClippedValuesWarning``) instead of raising.
    unit_range : the same range in the scan's own units, for messages (e.g. "-1024 to 3071 HU").

    Returns
    -------
    Integer array of ``dtype``, same shape as ``stored``.
    """
    codes = np.rint(stored)
    out = (codes < lo) | (codes > hi)
    n_out = int(np.count_nonzero(out))
    if n_out:
        what = (f"{n_out} of {codes.size} values fall outside what the stored format can hold "
                f"({unit_range})")
        if not clip:
            raise ScanError(path, f"{what}; nothing was written (pass clip=True to clip them)")
        warnings.warn(f"{path}: {what}; they were clipped", ClippedValuesWarning, stacklevel=3)
        codes = np.clip(codes, lo, hi)
    return codes.astype(dtype)
