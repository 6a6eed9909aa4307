"""The two public verbs, ``load_scan`` and ``save_scan``: pick the format, check, dispatch.

Formats are recognised by name (``.nii``/``.nii.gz``, ``.png``, ``.tif``/``.tiff``,
``.npy``), a folder is a DICOM series, and anything else is DICOM if it carries the 'DICM'
marker (or ends in ``.dcm``). Every failure is one ``ScanError`` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from durr.errors import ScanError
from durr.io import dicom, images, nifti
from durr.io.find import ScanSource
from durr.io.scan import MODALITIES, Scan

_READERS = {
    "dicom": dicom.read_dicom_file,
    "dicom-series": dicom.read_dicom_series,
    "nifti": nifti.read_nifti,
    "png": images.read_png,
    "tiff": images.read_tiff,
    "npy": images.read_npy,
}
_SUFFIXES = {
    "nifti": nifti.SUFFIXES,
    "png": images.PNG_SUFFIXES,
    "tiff": images.TIFF_SUFFIXES,
    "npy": images.NPY_SUFFIXES,
}


def _has_suffix(path: Path, suffixes) -> bool:
    return path.name.lower().endswith(tuple(suffixes))


def detect_format(path: str | os.PathLike) -> str:
    """The format ``load_scan`` would read ``path`` as ("dicom", "dicom-series", "nifti", ...)."""
    path = Path(path)
    if path.is_dir():
        return "dicom-series"
    for fmt, suffixes in _SUFFIXES.items():
        if _has_suffix(path, suffixes):
            return fmt
    if dicom.is_dicom_file(path):
        return "dicom"
    raise ScanError(path, "not a recognised scan format (DICOM, NIfTI .nii/.nii.gz, PNG, TIFF or NPY)")


def _check_modality(modality: str | None) -> str | None:
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
    return modality


def load_scan(source: str | os.PathLike | ScanSource, modality: str | None = None) -> Scan:
    """Read a scan from a file, a DICOM series folder, or an item of ``find_scans``.

    Parameters
    ----------
    source : a DICOM file (single- or multi-frame), a folder holding one DICOM series, a
        ``.nii``/``.nii.gz``, ``.png``, ``.tif``/``.tiff`` or ``.npy`` file, or a ScanSource.
    modality : "CT", "MR" or "OT" to override the modality; needed for formats that do not
        carry one (NIfTI, images and NPY default to "OT") and for DICOM files whose
        Modality is neither CT nor MR.

    Returns
    -------
    Scan, array float32 (H, W) or (Z, H, W) in physical units (see ``durr.io``).

    Raises
    ------
    ScanError : one line naming the file and the problem (missing, empty, truncated, not an
        image, colour, 4D, non-finite values, compressed without a decoder, ...).
    ValueError : an unknown ``modality``.

    Examples
    --------
    >>> scan = load_scan("datasets/samples/ct_small.dcm")   # doctest: +SKIP
    >>> scan.array.shape, scan.modality
    ((128, 128), 'CT')
    """
    modality = _check_modality(modality)
    if isinstance(source, ScanSource):
        if source.problem is not None:
            raise ScanError(source.path, source.problem)
        if source.format == "dicom-series":
            return _guarded(source.path, dicom.read_dicom_series, source.path, source.files, modality)
        path, fmt = Path(source.path), source.format
    else:
        path = Path(source)
        if not path.exists():
            raise ScanError(path, "no such file or folder")
        if path.is_file() and path.stat().st_size == 0:
            raise ScanError(path, "empty file (0 bytes)")
        fmt = detect_format(path)
    return _guarded(path, _READERS[fmt], path, modality=modality)


def _guarded(path: Path, fn, *args, **kwargs):
    """Call a reader or writer; any failure becomes one ``ScanError`` naming ``path``.

    Readers raise ``ScanError`` for the problems they know; anything else (an OS error, or a
    file damaged in a way no check foresaw) is reported with its type, so a batch can go on.
    """
    try:
        return fn(*args, **kwargs)
    except ScanError:
        raise
    except OSError as err:
        raise ScanError(path, f"cannot access: {err.strerror or err}") from None
    except MemoryError:
        raise ScanError(path, "not enough memory to hold this scan") from None
    except Exception as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ScanError(path, f"unexpected {type(err).__name__}: {text[:140]}") from err


def _sources(scan: Scan) -> list[Path]:
    paths = [scan.source_path] + list(scan.meta.get("files", []))
    return [Path(p) for p in paths if p]


def _refuse_inputs(out: Path, scans: list[Scan]) -> None:
    """``ScanError`` if writing ``out`` could overwrite or replace any input file or folder."""
    target = out.resolve()
    for scan in scans:
        for src in _sources(scan):
            source = src.resolve()
            same = target == source or (out.exists() and source.exists() and os.path.samefile(out, source))
            if same or source in target.parents or target in source.parents:
                raise ScanError(out, f"refusing to write over the input {src}; choose another "
                                     "output path")


def _check_target(out: Path, fmt: str, scan: Scan, like: Scan) -> None:
    if fmt in _SUFFIXES and not _has_suffix(out, _SUFFIXES[fmt]):
        raise ScanError(out, f"a {fmt} scan is written to a name ending in "
                             f"{' or '.join(_SUFFIXES[fmt])}")
    if fmt in ("dicom", "dicom-series"):
        for other, suffixes in _SUFFIXES.items():
            if _has_suffix(out, suffixes):
                raise ScanError(out, f"a DICOM scan cannot be written to a {other} file name")
        if "datasets" not in like.meta:
            raise ScanError(out, "no DICOM headers to write with; pass like= a scan loaded from DICOM")
    if fmt == "nifti" and "header" not in like.meta:
        raise ScanError(out, "no NIfTI header to write with; pass like= a scan loaded from NIfTI")
    if fmt == "dicom-series" and out.exists() and not out.is_dir():
        raise ScanError(out, "a DICOM series is written as a folder, but this is a file")
    if fmt in ("dicom", "nifti", "tiff", "npy", "png") and out.is_dir():
        raise ScanError(out, "is a folder; give a file name")
    if fmt in ("dicom", "dicom-series", "nifti") and scan.slices.shape != like.slices.shape:
        raise ScanError(out, f"scan shape {scan.array.shape} does not match the shape "
                             f"{like.array.shape} of the source whose headers it is written with")


def save_scan(scan: Scan, path: str | os.PathLike, like: Scan | str | os.PathLike | ScanSource | None = None,
              *, clip: bool = False) -> Path:
    """Write ``scan`` in the format, headers and units of ``like`` (default: its own source).

    Parameters
    ----------
    scan : the scan to write, array (H, W) or (Z, H, W) in physical units.
    path : output file, or output folder for a DICOM series. Parent folders are created.
        The write is atomic: ``path`` appears complete or not at all.
    like : a Scan (or anything ``load_scan`` accepts) whose format and headers to reuse;
        for DICOM and NIfTI its shape must match ``scan``'s.
    clip : values that the stored bit depth cannot hold raise ``ScanError`` (nothing is
        written); with ``clip=True`` they are clipped and a ``ClippedValuesWarning`` is issued.

    Returns
    -------
    The path written.

    Raises
    ------
    ScanError : ``path`` would overwrite the input (or a folder holding it), NaN/Inf values,
        values out of range, a shape mismatch, a name that does not fit the format, or an
        OS error while writing.

    Notes
    -----
    What changes in DICOM headers is listed in ``durr.io.dicom``; NIfTI headers are kept
    byte for byte; PNG/TIFF keep their bit depth; NPY is written as float32.
    """
    out = Path(path)
    if like is None:
        like_scan = scan
    elif isinstance(like, Scan):
        like_scan = like
    else:
        like_scan = load_scan(like)
    fmt = like_scan.source_format
    _refuse_inputs(out, [scan] if like_scan is scan else [scan, like_scan])
    if fmt not in _READERS:
        raise ScanError(out, f"unknown source format {fmt!r}")
    bad = scan.array.size - int(np.count_nonzero(np.isfinite(scan.array)))
    if bad:
        raise ScanError(out, f"the scan to write holds {bad} NaN or infinite values; nothing was written")
    _check_target(out, fmt, scan, like_scan)
    if fmt in ("dicom", "dicom-series"):
        return _guarded(out, dicom.write_dicom, scan, out, like_scan, clip)
    if fmt == "nifti":
        return _guarded(out, nifti.write_nifti, scan, out, like_scan, clip)
    depth = like_scan.meta.get("bit_depth", 8 if fmt == "png" else 16)
    if fmt == "png":
        return _guarded(out, images.write_png, scan, out, depth, clip)
    if fmt == "tiff":
        photometric = like_scan.meta.get("photometric", "minisblack")
        return _guarded(out, images.write_tiff, scan, out, depth, clip, photometric)
    return _guarded(out, images.write_npy, scan, out)
