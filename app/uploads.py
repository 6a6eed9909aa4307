"""Uploaded files -> a ``Scan``, through ``durr.io.load_scan``, in a temporary folder that is removed.

What the page accepts (the one place that decides):

* one DICOM file (any name: DICOM is recognised by content), a NIfTI (``.nii``/``.nii.gz``),
  PNG, TIFF or NPY file;
* several DICOM files, the slices of one series;
* a ``.zip`` holding one DICOM series (sub-folders are flattened; DICOMDIR, hidden files and
  files that are not DICOM are skipped).

Every problem is an ``UploadError`` whose message names the uploaded file as the user knows it
(never the temporary path) and says what to do. Nothing here imports streamlit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from durr.errors import ScanError
from durr.io import Scan, detect_format, load_scan

TEMP_PREFIX = "durr-app-"
DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_VOXELS = 40_000_000          # about 160 MB as float32, e.g. 150 slices of 512 x 512
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "datasets" / "samples"
# label shown in the page -> (path under datasets/samples, modality to read it as)
SAMPLES: dict[str, tuple[str, str | None]] = {
    "CT neck / spine slice, 512x512 (ct_spine.dcm)": ("ct_spine.dcm", None),
    "CT slice, 128x128 (ct_small.dcm)": ("ct_small.dcm", None),
    "CT series, 4 slices (ct_series/)": ("ct_series", None),
    "MR brain volume, NIfTI 16x96x80 (mr_brain.nii.gz)": ("mr_brain.nii.gz", "MR"),
    "MR slice, 64x64 (mr_small.dcm)": ("mr_small.dcm", None),
}
_FORMAT_NAMES = {"nifti": "NIfTI", "png": "PNG", "tiff": "TIFF", "npy": "NPY"}
_NOT_SERIES = (".nii", ".nii.gz", ".png", ".tif", ".tiff", ".npy", ".zip")


class UploadError(ValueError):
    """An upload the app cannot use; ``str(err)`` is the message shown in the page."""


@dataclass(frozen=True)
class Limits:
    """What one upload may weigh: total bytes (zip members unpacked) and voxels."""

    max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    max_voxels: int = DEFAULT_MAX_VOXELS
    max_files: int = 3000

    @property
    def max_mb(self) -> float:
        return self.max_bytes / (1024 * 1024)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Limits":
        """``DURR_APP_MAX_UPLOAD_MB`` (what ``durr app --max-upload-mb`` sets) and ``DURR_APP_MAX_VOXELS``."""
        env = os.environ if environ is None else environ
        mb = float(env.get("DURR_APP_MAX_UPLOAD_MB") or DEFAULT_MAX_UPLOAD_MB)
        voxels = int(float(env.get("DURR_APP_MAX_VOXELS") or DEFAULT_MAX_VOXELS))
        return cls(max_bytes=int(mb * 1024 * 1024), max_voxels=voxels)


@dataclass
class Loaded:
    """A scan read from an upload or a sample.

    label : how the page names it ("ct_small.dcm", "series.zip (4 DICOM files)").
    base_name : the name the download is derived from ("ct_small.dcm", "series.zip").
    notes : things worth telling the user (skipped zip members, a guessed modality).
    """

    scan: Scan
    label: str
    base_name: str
    notes: list[str] = field(default_factory=list)


def digest(files: Sequence[tuple[str, bytes]]) -> str:
    """SHA-256 over the names and bytes of an upload: the cache key of everything derived from it."""
    h = hashlib.sha256()
    for name, data in files:
        h.update(name.encode("utf-8", "replace") + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def safe_name(name: str) -> str:
    """The last component of an uploaded (or zipped) name, safe to create in a temporary folder."""
    base = PurePosixPath(str(name).replace("\\", "/")).name.strip().lstrip(".")
    base = "".join(c if c.isprintable() and c not in '<>:"|?*' else "_" for c in base)
    return base[:200] or "upload"


def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 1
    while candidate.lower() in taken:
        candidate, k = f"{k}_{name}", k + 1
    taken.add(candidate.lower())
    return candidate


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 100 * 1024 else f"{n / 1024:.1f} kB"


def _check_total(files: Sequence[tuple[str, bytes]], limits: Limits) -> None:
    total = sum(len(data) for _, data in files)
    if total > limits.max_bytes:
        what = files[0][0] if len(files) == 1 else f"the {len(files)} files"
        raise UploadError(f"{what}: too large ({_mb(total)}); the limit is {_mb(limits.max_bytes)} per upload")
    if len(files) > limits.max_files:
        raise UploadError(f"too many files ({len(files)}); the limit is {limits.max_files}")


def _lower(name: str) -> str:
    return name.lower()


def _is_zip(name: str) -> bool:
    return _lower(name).endswith(".zip")


def _extract_zip(name: str, data: bytes, folder: Path, limits: Limits) -> tuple[dict[Path, str], int]:
    """Unpack the regular files of a zip, flattened, into ``folder``; returns {path: member name}
    and the number of members skipped."""
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as err:
        raise UploadError(f"{name}: not a readable zip archive ({err})") from None
    skipped = 0
    kept = []
    for m in members:
        parts = PurePosixPath(m.filename.replace("\\", "/")).parts
        base = parts[-1] if parts else ""
        if (not base or base.startswith(".") or "__MACOSX" in parts or base.upper() == "DICOMDIR"):
            skipped += 1
            continue
        kept.append(m)
    total = sum(m.file_size for m in kept)
    if total > limits.max_bytes:
        raise UploadError(f"{name}: too large once unpacked ({_mb(total)}); the limit is "
                          f"{_mb(limits.max_bytes)} per upload")
    if len(kept) > limits.max_files:
        raise UploadError(f"{name}: too many files in the archive ({len(kept)}); the limit is {limits.max_files}")
    paths: dict[Path, str] = {}
    taken: set[str] = set()
    for m in kept:
        target = folder / _unique(safe_name(m.filename), taken)
        try:
            with archive.open(m) as src:
                content = src.read(limits.max_bytes + 1)  # bounded even if the header lies
        except RuntimeError as err:  # encrypted member
            raise UploadError(f"{name}: cannot read {m.filename} ({err})") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as err:
            raise UploadError(f"{name}: corrupt zip archive, cannot read {m.filename} ({err})") from None
        if len(content) > limits.max_bytes:
            raise UploadError(f"{name}: too large once unpacked; the limit is {_mb(limits.max_bytes)} per upload")
        target.write_bytes(content)
        paths[target] = m.filename
    return paths, skipped


def _message(err: ScanError, names: dict[str, str], fallback: str) -> str:
    """A ScanError's message with the temporary path replaced by the name the user uploaded."""
    label = names.get(err.path or "", fallback)
    several = re.match(r"folder holds (\d+) DICOM series", err.problem)
    if several:
        return f"{label}: {several.group(1)} different DICOM series found; upload the files of one series at a time"
    return f"{label}: {err.problem}"


def _check_voxels(scan: Scan, label: str, limits: Limits) -> None:
    if scan.array.size > limits.max_voxels:
        raise UploadError(f"{label}: too large ({scan.array.size:,} voxels, shape {scan.array.shape}); "
                          f"the limit is {limits.max_voxels:,} voxels")


def _precheck_nifti(path: Path, label: str, limits: Limits) -> None:
    """Refuse a huge (or 4D) NIfTI from its header, before its data is decompressed."""
    try:
        import nibabel

        shape = tuple(int(n) for n in nibabel.load(str(path)).shape)
    except Exception:
        return  # let load_scan report what is wrong with it
    if int(np.prod(shape, dtype=np.int64)) > limits.max_voxels:
        raise UploadError(f"{label}: too large ({int(np.prod(shape, dtype=np.int64)):,} voxels, shape "
                          f"{shape}); the limit is {limits.max_voxels:,} voxels")


def read_upload(files: Sequence[tuple[str, bytes]], modality: str | None = None,
                limits: Limits | None = None) -> Loaded:
    """Read uploaded files as one scan.

    Parameters
    ----------
    files : (name, bytes) per uploaded file, in upload order.
    modality : "CT", "MR", "OT" to override, or None (from the file; NIfTI and images are guessed,
        see ``guess_modality``).
    limits : size limits (default ``Limits.from_env()``).

    Returns
    -------
    Loaded, whose scan keeps the headers needed to write the restored scan back. The temporary
    folder the files were written to is removed before this returns.

    Raises
    ------
    UploadError : a message fit for the page (too large, unsupported, corrupt, colour, 4D, ...).
    """
    limits = limits or Limits.from_env()
    files = [(str(n), bytes(d)) for n, d in files]
    if not files:
        raise UploadError("nothing was uploaded")
    _check_total(files, limits)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        folder = Path(tmp) / "scan"
        folder.mkdir()
        if len(files) == 1 and _is_zip(files[0][0]):
            name = files[0][0]
            written, skipped = _extract_zip(name, files[0][1], folder, limits)
            names = {str(p): f"{name} / {member}" for p, member in written.items()}
            dicom = []
            for p in written:
                try:
                    if detect_format(p) == "dicom":
                        dicom.append(p)
                        continue
                except ScanError:
                    pass
                skipped += 1
                p.unlink()
            if not dicom:
                raise UploadError(f"{name}: holds no DICOM files; a zip must hold the DICOM files of one series")
            label = f"{name} ({len(dicom)} DICOM file{'s' if len(dicom) > 1 else ''})"
            names[str(folder)] = name
            notes = [f"{skipped} file(s) in the zip that are not DICOM slices were skipped"] if skipped else []
            scan = _load(folder, modality, names, label)
            base = name
        elif len(files) == 1:
            name = files[0][0]
            path = folder / safe_name(name)
            path.write_bytes(files[0][1])
            names = {str(path): name}
            if path.name.lower().endswith((".nii", ".nii.gz")):
                _precheck_nifti(path, name, limits)
            scan = _load(path, modality, names, name)
            label, base, notes = name, name, []
        else:
            names, taken = {}, set()
            for name, data in files:
                if _lower(name).endswith(_NOT_SERIES):
                    raise UploadError(f"{name}: several files are read as the DICOM slices of one series; "
                                      "upload a NIfTI, PNG, TIFF or zip file on its own")
                path = folder / _unique(safe_name(name), taken)
                path.write_bytes(data)
                names[str(path)] = name
                try:
                    fmt = detect_format(path)
                except ScanError:
                    fmt = None
                if fmt != "dicom":
                    raise UploadError(f"{name}: not a DICOM file; several files are read as the DICOM "
                                      "slices of one series")
            names[str(folder)] = f"the {len(files)} uploaded files"
            label = f"{len(files)} DICOM files"
            scan = _load(folder, modality, names, label)
            base, notes = "series.zip", []
    _check_voxels(scan, label, limits)
    if modality is None and scan.modality == "OT":
        guessed = guess_modality(scan)
        if guessed != "OT":
            scan = dataclasses.replace(scan, modality=guessed)
            fmt = _FORMAT_NAMES.get(scan.source_format, scan.source_format)
            notes.append(f"{fmt} does not record the modality: read as {guessed} "
                         "from its values (change it in the sidebar if wrong)")
    return Loaded(scan, label, base, notes)


def _load(path: Path, modality: str | None, names: dict[str, str], fallback: str) -> Scan:
    try:
        return load_scan(path, modality=modality)
    except ScanError as err:
        raise UploadError(_message(err, names, fallback)) from None


def guess_modality(scan: Scan) -> str:
    """CT for HU-like values (below -200), MR for a NIfTI of non-negative values, else OT."""
    lo, hi = float(np.min(scan.array)), float(np.max(scan.array))
    if lo < -200.0:
        return "CT"
    if scan.source_format == "nifti" and hi > 1.0:
        return "MR"
    return "OT"


def load_sample(label: str, modality: str | None = None) -> Loaded:
    """One of the bundled ``SAMPLES`` (for trying the app and for study mode)."""
    filename, default_modality = SAMPLES[label]
    path = SAMPLES_DIR / filename
    try:
        scan = load_scan(path, modality=modality or default_modality)
    except ScanError as err:
        raise UploadError(f"{filename}: {err.problem}") from None
    base = filename + ".zip" if scan.source_format == "dicom-series" else filename
    return Loaded(scan, filename, base)
