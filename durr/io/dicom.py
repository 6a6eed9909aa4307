"""DICOM in and out: one file (single- or multi-frame) or a folder holding one series.

Reading
-------
Values are converted to physical units with the modality rescale, per slice or per frame:
``value = stored * RescaleSlope + RescaleIntercept`` (HU for CT; MR in scanner units, slope 1
and intercept 0 when absent). MONOCHROME1 images are not inverted: the values stay physical. Enhanced multi-frame files take the rescale and geometry from
their functional groups (per-frame first, then shared, then the top level).

Axes: a single frame is ``(H, W)`` = ``(Rows, Columns)``; a multi-frame file is
``(frames, H, W)`` in file order; a series is ``(Z, H, W)`` with slices sorted by their
ImagePositionPatient projected on the slice normal (the cross product of the two
ImageOrientationPatient directions), falling back to InstanceNumber, never by file name.
``Scan.affine`` maps the index ``(column, row, slice, 1)`` (the array index reversed) to
RAS+ millimetres like NIfTI (DICOM's LPS patient axes with x and y negated); it is ``None``
when the file carries no orientation or position.

Writing
-------
Every element of the source is kept except the pixel data and these, which must change:

* SOPInstanceUID (and file meta MediaStorageSOPInstanceUID): new for every file;
* SeriesInstanceUID: new, one per saved series (shared by its slices);
* ImageType: first value "DERIVED", second "SECONDARY" (further values kept);
* SeriesDescription: suffixed with " [DURR restored]" (the original part is shortened if the
  64-character limit requires it);
* DerivationDescription: set (or appended to) saying the image was restored by DURR;
* Smallest/LargestImagePixelValue and Smallest/LargestPixelValueInSeries, where present,
  describe the new pixel data;
* the transfer syntax becomes Explicit VR Little Endian when the source was compressed
  (encapsulated), deflated or big endian; Implicit/Explicit VR Little Endian are kept. The
  encapsulation-only Extended Offset Table elements are dropped.

RescaleSlope/Intercept, BitsAllocated, BitsStored, HighBit and PixelRepresentation are kept:
values are mapped back through the original rescale and rounded; values the stored bit depth
cannot hold raise ``ScanError`` (or are clipped with a warning when ``clip=True``, see
``durr.io.values``). A series is written as a folder with the source's file names.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID, generate_uid

from durr.errors import ScanError
from durr.io.atomic import atomic_file, atomic_folder
from durr.io.scan import Scan
from durr.io.values import check_finite, quantise

SERIES_SUFFIX = " [DURR restored]"
DERIVATION_TEXT = ("Restored (denoised) by DURR, the Dynamically Unfolding Recurrent Restorer "
                   "(moving endpoint control)")

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_ENCAPSULATION_ONLY = ("ExtendedOffsetTable", "ExtendedOffsetTableLengths")
_NATIVE_KEPT = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)

# Which pip packages decode which compressed transfer syntaxes (pydicom's pixel plugins).
_DECODER_HINTS = (
    ("1.2.840.10008.1.2.4.5", "pylibjpeg pylibjpeg-libjpeg"),   # JPEG baseline/extended/lossless
    ("1.2.840.10008.1.2.4.7", "pylibjpeg pylibjpeg-libjpeg"),   # JPEG lossless SV1
    ("1.2.840.10008.1.2.4.8", "pylibjpeg pylibjpeg-libjpeg"),   # JPEG-LS (or pyjpegls)
    ("1.2.840.10008.1.2.4.9", "pylibjpeg pylibjpeg-openjpeg"),  # JPEG 2000
    ("1.2.840.10008.1.2.4.20", "pylibjpeg pylibjpeg-openjpeg"),  # HTJ2K
    ("1.2.840.10008.1.2.5", "pylibjpeg pylibjpeg-rle"),         # RLE (pydicom also decodes it itself)
)


# --------------------------------------------------------------------------- reading


def _short(err: BaseException, limit: int = 140) -> str:
    """One line from an exception message (pydicom lists per-plugin reasons on later lines)."""
    text = " ".join(line.strip() for line in str(err).strip().splitlines()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_dicom_file(path: Path) -> bool:
    """True if ``path`` starts like a DICOM file ('DICM' after the preamble) or ends in .dcm."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dataset(path: Path, *, header_only: bool = False) -> Dataset:
    """Read one DICOM file; every failure is a ``ScanError`` naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ScanError(path, "no such file") from None
    if size == 0:
        raise ScanError(path, "empty file (0 bytes)")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only)
    except InvalidDicomError:
        raise ScanError(path, "not a DICOM file (no DICOM header)") from None
    except Exception as err:  # pydicom raises many types for damaged files
        raise ScanError(path, f"truncated or corrupt DICOM file ({_short(err)})") from None
    if len(ds) == 0:
        raise ScanError(path, "truncated DICOM file (nothing after the file header)")
    _check_complete(ds, size, path)
    return ds


def _check_complete(ds: Dataset, size: int, path: Path) -> None:
    """``ScanError`` if the file ends inside its last element (pydicom stops there silently).

    Also right after ``stop_before_pixels``: the pixel data element then follows the last
    element read, so at least its 12-byte header remains.
    """
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is not None and UID(ts).is_deflated:
        return  # offsets refer to the inflated stream
    last_tag = max(ds.keys())
    last = ds.get_item(last_tag)
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return
    end = tell + length
    if end > size or 0 < size - end < 12:
        name = pydicom.datadict.keyword_for_tag(last_tag) or str(last_tag)
        where = (f"inside {name} ({size} of at least {end} bytes)" if end > size
                 else f"inside the element that follows {name}")
        raise ScanError(path, f"truncated DICOM file: it ends {where}")


def _pixel_keyword(ds: Dataset) -> str | None:
    return next((kw for kw in _PIXEL_KEYWORDS if kw in ds), None)


def _colour_problem(ds: Dataset) -> str | None:
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if spp != 1 or not photometric.startswith("MONOCHROME"):
        return (f"colour image ({photometric}, {spp} samples per pixel); "
                "a greyscale (MONOCHROME) image is needed")
    return None


def check_image(ds: Dataset, path: Path) -> None:
    """Raise ``ScanError`` unless ``ds`` holds a greyscale image we can read and write back."""
    if _pixel_keyword(ds) is None:
        sop = ds.get("SOPClassUID")
        kind = f" ({UID(sop).name})" if sop else ""
        raise ScanError(path, f"DICOM file has no pixel data{kind}; it is not an image")
    problem = _colour_problem(ds)
    if problem:
        raise ScanError(path, problem)
    if "PixelData" in ds and int(ds.get("BitsAllocated", 16)) not in (8, 16, 32):
        raise ScanError(path, f"{ds.BitsAllocated}-bit pixel data is not supported (8, 16 or 32 bits)")


def header_problem(ds: Dataset) -> str | None:
    """Why a header read with ``stop_before_pixels`` cannot be a greyscale image, or None."""
    sop = ds.get("SOPClassUID")
    if not sop:
        return "truncated or incomplete DICOM file (it has no SOP Class UID)"
    if "Rows" not in ds or "Columns" not in ds:
        if "Image" in UID(sop).name:
            return f"truncated DICOM file: a {UID(sop).name} object without its image attributes"
        return f"DICOM file without an image ({UID(sop).name})"
    return _colour_problem(ds)


def _missing_decoder(ts: UID, decoder) -> str:
    hint = next((pkgs for prefix, pkgs in _DECODER_HINTS if ts.startswith(prefix)), None)
    if hint is None:
        deps = "; ".join(decoder.missing_dependencies) or "no plugin known"
        return f"pixel data is compressed as {ts.name} and no decoder for it is installed ({deps})"
    return (f"pixel data is compressed as {ts.name} and no decoder for it is installed; "
            f"install one with: pip install {hint}")


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Stored pixel values, shape (frames, H, W), in the stored dtype."""
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    ts = UID(ts) if ts else None
    if ts is not None and ts.is_compressed:
        from pydicom.pixels import get_decoder
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise ScanError(path, f"pixel data compressed as {ts.name} ({ts}) cannot be decoded "
                                  "by pydicom") from None
        if not decoder.is_available:
            raise ScanError(path, _missing_decoder(ts, decoder))
    try:
        arr = ds.pixel_array
    except Exception as err:
        if ts is not None and ts.is_compressed:
            raise ScanError(path, f"cannot decode the {ts.name} pixel data ({_short(err, 300)})") from None
        raise ScanError(path, f"cannot read the pixel data, the file may be damaged ({_short(err)})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr.reshape(frames, int(ds.Rows), int(ds.Columns))


def _frame_item(ds: Dataset, i: int, sequence: str) -> Dataset | None:
    """Item of a functional-group ``sequence`` for frame ``i`` (per-frame, else shared)."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", i),
                          ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq is not None and len(seq) > index:
            items = seq[index].get(sequence)
            if items:
                return items[0]
    return None


def _frame_value(ds: Dataset, i: int, sequence: str, keyword: str):
    item = _frame_item(ds, i, sequence)
    if item is not None and keyword in item and item[keyword].value not in (None, ""):
        return item[keyword].value
    value = ds.get(keyword)
    return None if value in (None, "") else value


def _rescale(ds: Dataset, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (slope, intercept), shape (frames,) each; (1, 0) where absent."""
    slopes = np.ones(frames)
    inters = np.zeros(frames)
    for i in range(frames):
        m = _frame_value(ds, i, "PixelValueTransformationSequence", "RescaleSlope")
        b = _frame_value(ds, i, "PixelValueTransformationSequence", "RescaleIntercept")
        slopes[i] = 1.0 if m is None else float(m)
        inters[i] = 0.0 if b is None else float(b)
        if slopes[i] == 0:
            slopes[i] = 1.0
    return slopes, inters


def _plane(ds: Dataset, i: int):
    """(orientation (6,), position (3,), pixel spacing (2,), slice spacing) of frame ``i``."""
    iop = _frame_value(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient")
    ipp = _frame_value(ds, i, "PlanePositionSequence", "ImagePositionPatient")
    ps = _frame_value(ds, i, "PixelMeasuresSequence", "PixelSpacing")
    dz = (_frame_value(ds, i, "PixelMeasuresSequence", "SpacingBetweenSlices")
          or _frame_value(ds, i, "PixelMeasuresSequence", "SliceThickness"))
    as_array = lambda v, n: np.asarray([float(x) for x in v]) if v is not None and len(v) == n else None
    return as_array(iop, 6), as_array(ipp, 3), as_array(ps, 2), (float(dz) if dz else None)


def _geometry(planes: list, volume: bool) -> tuple[tuple[float, ...], np.ndarray | None]:
    """Spacing ((dz,) dr, dc) and RAS affine of slices in array order, from their planes."""
    iop, ipp0, ps, dz_tag = planes[0]
    dr, dc = (float(ps[0]), float(ps[1])) if ps is not None else (1.0, 1.0)
    positions = [p[1] for p in planes]
    normal = None if iop is None else np.cross(iop[:3], iop[3:])
    dz = step = None
    if len(planes) > 1 and normal is not None and all(p is not None for p in positions):
        pos = np.stack(positions)                                # (Z, 3), one per slice
        gaps = np.abs(np.diff(pos @ normal))
        if np.all(gaps > 0):                                     # per-slice positions
            step = (pos[-1] - pos[0]) / (len(pos) - 1)
            dz = float(np.median(gaps))
    if dz is None:
        dz = dz_tag or 1.0
        step = None if normal is None else normal * dz
    spacing = (dz, dr, dc) if volume else (dr, dc)
    if iop is None or ipp0 is None:
        return spacing, None
    m = np.eye(4)
    m[:3, 0] = iop[:3] * dc
    m[:3, 1] = iop[3:] * dr
    m[:3, 2] = step
    m[:3, 3] = ipp0
    return spacing, np.diag([-1.0, -1.0, 1.0, 1.0]) @ m  # LPS -> RAS


def _modality(ds: Dataset, path: Path, override: str | None) -> str:
    if override is not None:
        return override
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in ("CT", "MR"):
        return modality
    raise ScanError(path, f"DICOM modality {modality or '(missing)'} is not supported (CT or MR "
                          "needed); pass modality='CT', 'MR' or 'OT' to read it anyway")


def _template(ds: Dataset) -> tuple[Dataset, str]:
    """The dataset without its pixel data (kept in ``Scan.meta`` to write back), and the pixel keyword."""
    keyword = _pixel_keyword(ds)
    for kw in _PIXEL_KEYWORDS:
        if kw in ds:
            del ds[kw]
    return ds, keyword


def _values(stored: np.ndarray, slopes: np.ndarray, inters: np.ndarray) -> np.ndarray:
    values = stored.astype(np.float64) * slopes[:, None, None] + inters[:, None, None]
    return values.astype(np.float32)


def read_dicom_file(path: str | Path, modality: str | None = None) -> Scan:
    """Read one DICOM file.

    Returns
    -------
    Scan with array (H, W) for a single frame or (frames, H, W) for a multi-frame file,
    source_format "dicom".
    """
    path = Path(path)
    ds = read_dataset(path)
    check_image(ds, path)
    mod = _modality(ds, path, modality)
    stored = _decode(ds, path)
    n = stored.shape[0]
    slopes, inters = _rescale(ds, n)
    values = _values(stored, slopes, inters)
    check_finite(values, path)
    volume = "NumberOfFrames" in ds and n > 1
    spacing, affine = _geometry([_plane(ds, i) for i in range(n)], volume)
    template, keyword = _template(ds)
    meta = {"datasets": [template], "filenames": [path.name], "files": [str(path)],
            "slopes": slopes, "intercepts": inters, "pixel_keyword": keyword}
    array = values if volume else values[0]
    return Scan(array, mod, spacing, affine, "dicom", str(path), meta)


def list_series_files(folder: Path) -> list[Path]:
    """DICOM files directly inside ``folder`` (hidden files and DICOMDIR skipped)."""
    files = [p for p in sorted(folder.iterdir())
             if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"]
    return [p for p in files if is_dicom_file(p)]


def _slice_order(datasets: Sequence[Dataset], folder: Path) -> list[int]:
    """Indices of ``datasets`` sorted along the slice normal (or by InstanceNumber)."""
    n = len(datasets)
    if n == 1:
        return [0]
    iops = [ds.get("ImageOrientationPatient") for ds in datasets]
    ipps = [ds.get("ImagePositionPatient") for ds in datasets]
    if all(v is not None and len(v) == 6 for v in iops) and all(v is not None and len(v) == 3 for v in ipps):
        iop = np.asarray([[float(x) for x in v] for v in iops])
        if not np.allclose(iop, iop[0], atol=1e-3):
            raise ScanError(folder, "the slices have different orientations (ImageOrientationPatient); "
                                    "is a localizer mixed into the series?")
        normal = np.cross(iop[0, :3], iop[0, 3:])
        keys = np.asarray([[float(x) for x in v] for v in ipps]) @ normal
        order = np.argsort(keys, kind="stable")
        gaps = np.diff(keys[order])
        if np.all(gaps > 1e-4):
            return [int(i) for i in order]
        raise ScanError(folder, f"{int(np.sum(gaps <= 1e-4))} slices repeat a position; series with "
                                "several echoes or time points are not supported")
    numbers = [ds.get("InstanceNumber") for ds in datasets]
    if all(v not in (None, "") for v in numbers) and len({int(v) for v in numbers}) == n:
        return [int(i) for i in np.argsort([int(v) for v in numbers], kind="stable")]
    raise ScanError(folder, "cannot order the slices: they have neither ImagePositionPatient/"
                            "ImageOrientationPatient nor distinct InstanceNumbers")


def read_dicom_series(folder: str | Path, files: Sequence[str | Path] | None = None,
                      modality: str | None = None) -> Scan:
    """Read the one DICOM series in ``folder`` (or the given ``files`` of one series).

    Returns
    -------
    Scan with array (Z, H, W) in slice order, spacing (dz, dr, dc), source_format
    "dicom-series", source_path ``folder``.
    """
    folder = Path(folder)
    if files is None:
        files = list_series_files(folder)
        if not files:
            raise ScanError(folder, "no DICOM files directly in this folder (sub-folders are not "
                                    "searched: use durr.io.find_scans)")
    files = [Path(f) for f in files]
    datasets = [read_dataset(f) for f in files]
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(uids) > 1:
        raise ScanError(folder, f"folder holds {len(uids)} DICOM series but load_scan reads one; "
                                "use durr.io.find_scans to split them")
    for f, ds in zip(files, datasets):
        check_image(ds, f)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ScanError(f, "multi-frame file inside a series folder; load it on its own")
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if len(shapes) > 1:
        raise ScanError(folder, f"the slices differ in size ({sorted(shapes)})")
    order = _slice_order(datasets, folder)
    files = [files[i] for i in order]
    datasets = [datasets[i] for i in order]
    mod = _modality(datasets[0], files[0], modality)
    stored = np.concatenate([_decode(ds, f) for f, ds in zip(files, datasets)])
    slopes = np.empty(len(files))
    inters = np.empty(len(files))
    for k, ds in enumerate(datasets):
        (slopes[k],), (inters[k],) = _rescale(ds, 1)
    values = _values(stored, slopes, inters)
    check_finite(values, folder)
    spacing, affine = _geometry([_plane(ds, 0) for ds in datasets], volume=True)
    templates, keywords = zip(*(_template(ds) for ds in datasets))
    meta = {"datasets": list(templates), "filenames": [f.name for f in files],
            "files": [str(f) for f in files], "slopes": slopes, "intercepts": inters,
            "pixel_keyword": keywords[0]}
    return Scan(values, mod, spacing, affine, "dicom-series", str(folder), meta)


# --------------------------------------------------------------------------- writing


def _stored_layout(ds: Dataset) -> tuple[np.dtype, int, int]:
    bits = int(ds.BitsAllocated)
    stored_bits = int(ds.get("BitsStored", bits))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    if signed:
        return dtype, -(2 ** (stored_bits - 1)), 2 ** (stored_bits - 1) - 1
    return dtype, 0, 2 ** stored_bits - 1


def _encode(ds: Dataset, frames: np.ndarray, slopes: np.ndarray, inters: np.ndarray,
            keyword: str, path: Path, clip: bool, unit: str) -> np.ndarray:
    """Stored values for ``frames`` (F, H, W) float: integer codes, or floats for float pixel data."""
    if keyword == "FloatPixelData":
        return frames.astype("<f4")
    if keyword == "DoubleFloatPixelData":
        return frames.astype("<f8")
    dtype, lo, hi = _stored_layout(ds)
    stored = (frames - inters[:, None, None]) / slopes[:, None, None]
    ends = np.concatenate([lo * slopes + inters, hi * slopes + inters])
    unit_range = f"{ends.min():g} to {ends.max():g}{unit}"
    return quantise(stored, dtype, lo, hi, path=path, clip=clip, unit_range=unit_range)


def _pixel_element(codes: np.ndarray) -> tuple[bytes, str]:
    """Native pixel bytes (padded to even length) and their VR."""
    data = codes.tobytes()
    if len(data) % 2:
        data += b"\0"
    vr = {"f4": "OF", "f8": "OD"}.get(f"{codes.dtype.kind}{codes.dtype.itemsize}")
    return data, vr or ("OB" if codes.dtype.itemsize == 1 else "OW")


def _derive(template: Dataset, codes: np.ndarray, keyword: str, series_uid: str) -> Dataset:
    """A copy of ``template`` carrying the pixel data ``codes`` and the documented changes."""
    ds = copy.deepcopy(template)
    for kw in _ENCAPSULATION_ONLY:
        if kw in ds:
            del ds[kw]
    data, vr = _pixel_element(codes)
    ds.add_new(pydicom.datadict.tag_for_keyword(keyword), vr, data)
    if codes.dtype.kind in "iu":
        if "SmallestImagePixelValue" in ds:
            ds.SmallestImagePixelValue = int(codes.min())
        if "LargestImagePixelValue" in ds:
            ds.LargestImagePixelValue = int(codes.max())
    sop_uid = generate_uid()
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    image_type = [str(v) for v in ds.get("ImageType", [])] if "ImageType" in ds else []
    image_type += [""] * (2 - len(image_type))
    image_type[:2] = ["DERIVED", "SECONDARY"]
    ds.ImageType = image_type
    desc = str(ds.get("SeriesDescription", "") or "")
    if not desc.endswith(SERIES_SUFFIX.strip()):
        desc = (desc[:64 - len(SERIES_SUFFIX)] + SERIES_SUFFIX) if desc else SERIES_SUFFIX.strip()
    ds.SeriesDescription = desc
    old = str(ds.get("DerivationDescription", "") or "")
    ds.DerivationDescription = (f"{old}; {DERIVATION_TEXT}" if old else DERIVATION_TEXT)[:1024]
    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts not in _NATIVE_KEPT:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def _write(ds: Dataset, path: Path) -> None:
    with atomic_file(path) as f:
        pydicom.dcmwrite(f, ds, enforce_file_format=True)


def write_dicom(scan: Scan, path: str | Path, like: Scan, clip: bool = False) -> Path:
    """Write ``scan.array`` with the headers of ``like`` (a DICOM file or series Scan).

    ``like.source_format`` "dicom" writes one file at ``path``; "dicom-series" writes a folder
    ``path`` holding one file per slice under the source's file names. All values are encoded
    before anything is written, so an out-of-range error leaves no output.
    """
    path = Path(path)
    meta = like.meta
    templates = meta["datasets"]
    frames = scan.slices.astype(np.float64)                    # (Z, H, W)
    unit = " HU" if like.modality == "CT" else ""
    keyword = meta.get("pixel_keyword") or "PixelData"
    slopes, inters = np.asarray(meta["slopes"]), np.asarray(meta["intercepts"])
    if keyword != "PixelData" or len({_stored_layout(ds) for ds in templates}) == 1:
        stack = _encode(templates[0], frames, slopes, inters, keyword, path, clip, unit)
        per_file = [stack[k:k + 1] for k in range(len(templates))] if len(templates) > 1 else [stack]
    else:  # a series whose files differ in bit depth
        per_file = [_encode(ds, frames[k:k + 1], slopes[k:k + 1], inters[k:k + 1], keyword, path,
                            clip, unit) for k, ds in enumerate(templates)]
    series_uid = generate_uid()
    derived = [_derive(ds, c, keyword, series_uid) for ds, c in zip(templates, per_file)]
    if per_file[0].dtype.kind in "iu":
        lo, hi = min(int(c.min()) for c in per_file), max(int(c.max()) for c in per_file)
        for ds in derived:
            if "SmallestPixelValueInSeries" in ds:
                ds.SmallestPixelValueInSeries = lo
            if "LargestPixelValueInSeries" in ds:
                ds.LargestPixelValueInSeries = hi
    if like.source_format == "dicom":
        _write(derived[0], path)
    else:
        with atomic_folder(path) as tmp:
            for name, ds in zip(meta["filenames"], derived):
                _write(ds, tmp / name)
    return path
