"""The restored scan as the bytes of a download, in the format it was uploaded in.

``durr.io.save_scan`` writes it (headers and units of the original, as the CLI does) into a
temporary folder that is removed before the bytes are returned; a DICOM series becomes a zip
of its files. Nothing here imports streamlit.
"""

from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from durr.io import ClippedValuesWarning, Scan, save_scan

from app.uploads import TEMP_PREFIX, safe_name

MIME = {
    "dicom": "application/dicom",
    "dicom-series": "application/zip",
    "nifti": "application/octet-stream",
    "png": "image/png",
    "tiff": "image/tiff",
    "npy": "application/octet-stream",
}
_SUFFIXES = (".nii.gz", ".nii", ".png", ".tiff", ".tif", ".npy", ".dcm", ".dicom", ".zip")


@dataclass
class Download:
    file_name: str
    data: bytes
    mime: str
    notes: list[str] = field(default_factory=list)


def split_name(name: str) -> tuple[str, str]:
    """("mr_brain", ".nii.gz") for "mr_brain.nii.gz"; a DICOM file without suffix gives ("IM1", "")."""
    name = safe_name(name)
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


def download_name(base_name: str, source_format: str, tag: str = "restored") -> str:
    """The file name offered for the restored scan: ``<stem>_<tag><suffix>``."""
    stem, suffix = split_name(base_name)
    if source_format == "dicom-series":
        suffix = ".zip"
    elif source_format == "dicom":
        suffix = suffix if suffix.lower() in (".dcm", ".dicom") else ".dcm"
    elif source_format == "nifti":
        suffix = suffix if suffix.lower() in (".nii", ".nii.gz") else ".nii.gz"
    elif source_format == "tiff":
        suffix = suffix if suffix.lower() in (".tif", ".tiff") else ".tif"
    else:
        suffix = "." + source_format
    return f"{stem}_{tag}{suffix}"


def export_scan(scan: Scan, original: Scan, base_name: str, tag: str = "restored") -> Download:
    """Bytes of ``scan`` written like ``original`` (DICOM file, NIfTI, PNG, TIFF, NPY; a DICOM
    series as a zip holding one folder ``<stem>_restored/`` of its files).

    Values the original's bit depth cannot hold are clipped (a note says how many, from
    ``durr.io``'s warning). Raises ``durr.errors.ScanError`` if it cannot be written.
    """
    fmt = original.source_format
    name = download_name(base_name, fmt, tag)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        target = Path(tmp) / ("series" if fmt == "dicom-series" else name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ClippedValuesWarning)
            save_scan(scan, target, like=original, clip=True)
        notes += [str(w.message) for w in caught if issubclass(w.category, ClippedValuesWarning)]
        if fmt == "dicom-series":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                folder = name[: -len(".zip")]
                for path in sorted(target.iterdir()):
                    archive.write(path, arcname=f"{folder}/{path.name}")
            data = buffer.getvalue()
        else:
            data = target.read_bytes()
    return Download(name, data, MIME.get(fmt, "application/octet-stream"), notes)
