"""Scans in and out: DICOM (file, multi-frame, series folder), NIfTI, PNG/TIFF and NPY.

``load_scan(path)`` returns a ``Scan`` whose array is float32, shape (H, W) or (Z, H, W), in
physical units: CT in HU (DICOM rescale applied), MR in scanner units, 8/16-bit images in
[0, 1], NPY and float images as stored. ``save_scan(scan, path, like=...)`` writes it back in
the source's format and units, atomically, and never over its input. ``find_scans(folder)``
lists the scans of a folder tree for batch work, unreadable files included (marked).

Axis and geometry conventions, shared by all formats:

* axis 0 of a volume is the slice axis (DICOM series sorted along the slice normal; NIfTI's
  third axis); for a slice, rows are axis 0 and columns axis 1;
* ``Scan.spacing`` is (row, column) mm, or (slice, row, column) for a volume;
* ``Scan.affine`` maps the array index reversed, ``(column, row, slice, 1)``, to RAS+ mm
  (NIfTI's own affine; DICOM's LPS geometry converted). It is None for PNG/TIFF/NPY and for
  DICOM without position/orientation.

Writing never clips values silently: see ``durr.io.values``. Module by job: ``dicom``,
``nifti``, ``images`` (PNG/TIFF/NPY), ``find`` (folder walking), ``atomic`` (safe writes),
``values`` (finiteness and bit-depth checks), ``api`` (the verbs).
"""

from durr.errors import ScanError
from durr.io.api import detect_format, load_scan, save_scan
from durr.io.find import ScanSource, find_scans
from durr.io.scan import MODALITIES, Scan
from durr.io.values import ClippedValuesWarning

__all__ = [
    "Scan",
    "ScanError",
    "ScanSource",
    "ClippedValuesWarning",
    "MODALITIES",
    "load_scan",
    "save_scan",
    "find_scans",
    "detect_format",
]
