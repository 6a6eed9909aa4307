"""Walk a folder and list the scans in it, for batch processing.

Each DICOM series (files of one folder sharing a SeriesInstanceUID, found by reading headers
only) is one item; a multi-frame DICOM file, a lone DICOM slice, and each NIfTI, PNG, TIFF
or NPY file is one item. Files that cannot be scans (empty, damaged, colour, 4D, not an image
format) are items too, with ``problem`` set, so that a batch can report them and go on.
Hidden files and folders (names starting with ".", which includes unfinished atomic writes)
and DICOMDIR index files are skipped. A series split over several folders appears as one
item per folder.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from durr.errors import ScanError
from durr.io import dicom, images, nifti

_PROBES = (
    ("nifti", nifti.is_nifti_name, nifti.probe_nifti),
    ("png", lambda p: p.suffix.lower() in images.PNG_SUFFIXES, images.probe_png),
    ("tiff", lambda p: p.suffix.lower() in images.TIFF_SUFFIXES, images.probe_tiff),
    ("npy", lambda p: p.suffix.lower() in images.NPY_SUFFIXES, images.probe_npy),
)


@dataclass(frozen=True)
class ScanSource:
    """One scan found by ``find_scans``.

    Attributes
    ----------
    path : the file, or for a DICOM series the folder holding its files.
    format : "dicom", "dicom-series", "nifti", "png", "tiff", "npy", or None if unrecognised.
    rel : a path relative to the walked folder, unique among the items, to mirror the input
        tree in an output folder: the file's own relative path; for a series, its folder
        (or ``folder/series-<SeriesInstanceUID>`` when that folder holds other scans too).
    files : the DICOM files of a series (in file-name order; loading sorts them by position).
    problem : why this item cannot be loaded, or None.
    series_uid : SeriesInstanceUID of a DICOM item.
    """

    path: Path
    format: str | None
    rel: PurePath
    files: tuple[Path, ...] = field(default=())
    problem: str | None = None
    series_uid: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def load(self, modality: str | None = None):
        """The scan (``durr.io.load_scan(self, modality)``); ``ScanError`` if it has a problem."""
        from durr.io.api import load_scan
        return load_scan(self, modality=modality)


def _classify(path: Path, root: Path, items: list, groups: dict) -> None:
    rel = path.relative_to(root) if path != root else PurePath(path.name)
    try:
        size = path.stat().st_size
    except OSError as err:
        items.append(ScanSource(path, None, rel, problem=f"cannot read ({err.strerror or err})"))
        return
    if size == 0:
        items.append(ScanSource(path, None, rel, problem="empty file (0 bytes)"))
        return
    for fmt, matches, probe in _PROBES:
        if matches(path):
            try:
                probe(path)
            except ScanError as err:
                items.append(ScanSource(path, fmt, rel, problem=err.problem))
            else:
                items.append(ScanSource(path, fmt, rel))
            return
    if not dicom.is_dicom_file(path):
        items.append(ScanSource(path, None, rel, problem="not a recognised scan format "
                                "(DICOM, NIfTI .nii/.nii.gz, PNG, TIFF or NPY)"))
        return
    try:
        ds = dicom.read_dataset(path, header_only=True)
    except ScanError as err:
        items.append(ScanSource(path, "dicom", rel, problem=err.problem))
        return
    uid = str(ds.get("SeriesInstanceUID", "") or "") or None
    problem = dicom.header_problem(ds)
    if problem or int(ds.get("NumberOfFrames", 1) or 1) > 1 or uid is None:
        items.append(ScanSource(path, "dicom", rel, problem=problem, series_uid=uid))
        return
    groups[(path.parent, uid)].append(path)


def find_scans(folder: str | os.PathLike) -> list[ScanSource]:
    """Every scan under ``folder`` (recursively), including unreadable files marked with a problem.

    Parameters
    ----------
    folder : a folder to walk (a single file gives a one-item list).

    Returns
    -------
    list of ScanSource sorted by ``rel``.

    Raises
    ------
    ScanError if ``folder`` does not exist.
    """
    root = Path(folder)
    if not root.exists():
        raise ScanError(root, "no such file or folder")
    items: list[ScanSource] = []
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    if root.is_file():
        _classify(root, root, items, groups)
    else:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or name.upper() == "DICOMDIR":
                    continue
                _classify(Path(dirpath) / name, root, items, groups)
    series = []
    for (parent, uid), files in groups.items():
        if len(files) == 1:
            rel = files[0].relative_to(root) if files[0] != root else PurePath(files[0].name)
            items.append(ScanSource(files[0], "dicom", rel, series_uid=uid))
        else:
            series.append((parent, uid, tuple(sorted(files))))
    others = [it.path for it in items if it.ok] + [f for _, _, fs in series for f in fs]
    for parent, uid, files in series:
        own = set(files)
        crowded = any(parent in p.parents and p not in own for p in others)
        rel = parent.relative_to(root)
        if crowded:
            rel = rel / f"series-{uid}"
        items.append(ScanSource(parent, "dicom-series", rel, files, series_uid=uid))
    return sorted(items, key=lambda it: (str(it.rel), str(it.path)))
