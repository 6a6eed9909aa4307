"""Regenerate the sample scans of ``datasets/samples/`` from offline sources.

Sources: pydicom's and pydicom-data's test files (``pydicom.data.get_testdata_file``) and the
MNI ICBM152 2009a T1 template shipped inside nilearn (``nilearn.datasets.MNI152_FILE_PATH``).
Origins and licences are recorded in ``datasets/samples/README.md``. The output is
deterministic (fixed UIDs, gzip without a time stamp), so rerunning gives identical files.

Usage::

    python datasets/make_samples.py [--out datasets/samples]
"""

from __future__ import annotations

import argparse
import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HERE = Path(__file__).resolve().parent

# Series sample: slice k (k = 0..3, in position order) is stored under NAMES[k], so that the
# file-name order (IM1, IM2, IM3, IM4) is not the position order (k = 1, 3, 0, 2).
SERIES_NAMES = ("IM3.dcm", "IM1.dcm", "IM4.dcm", "IM2.dcm")
SERIES_SHIFT_ROWS = 3        # each slice is CT_small moved down by 3 more rows
SERIES_STEP_MM = 5.0         # slice spacing along the normal


def _uid(*parts: str) -> str:
    return generate_uid(entropy_srcs=["durr-samples", *parts])


def _copy(name: str, out: Path, target: str) -> None:
    shutil.copyfile(get_testdata_file(name), out / target)


def ct_spine(out: Path) -> np.ndarray:
    """bad_sequence.dcm (JPEG lossless, 512x512 CT) written uncompressed; returns HU (512, 512)."""
    ds = pydicom.dcmread(get_testdata_file("bad_sequence.dcm"))
    stored = ds.pixel_array.astype("<u2")                      # (512, 512), 12-bit unsigned
    # Its UIDs are hex hashes, not valid DICOM UIDs: replace them with valid ones derived from them.
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, _uid("bad_sequence", str(ds.get(keyword))))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyID = str(ds.StudyID)[:16]                          # SH holds 16 characters
    del ds.PixelData
    ds.add_new(0x7FE00010, "OW", stored.tobytes())
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(out / "ct_spine.dcm", ds, enforce_file_format=True)
    return stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def ct_series(out: Path) -> None:
    """Four 128x128 CT slices made from CT_small, 5 mm apart, file names out of position order."""
    folder = out / "ct_series"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    image = source.pixel_array                                 # (128, 128) int16
    normal = np.cross(np.asarray(source.ImageOrientationPatient[:3], float),
                      np.asarray(source.ImageOrientationPatient[3:], float))
    origin = np.asarray(source.ImagePositionPatient, float)
    series_uid = _uid("ct_series")
    for k, name in enumerate(SERIES_NAMES):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        pixels = np.roll(image, SERIES_SHIFT_ROWS * k, axis=0).astype("<i2")
        del ds.PixelData
        ds.add_new(0x7FE00010, "OW", pixels.tobytes())
        position = origin + k * SERIES_STEP_MM * normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in position]
        ds.SliceLocation = f"{float(ds.SliceLocation) + k * SERIES_STEP_MM:.4f}"
        ds.InstanceNumber = k + 1
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 901
        ds.SeriesDescription = "synthetic 4-slice series from CT_small"
        ds.SOPInstanceUID = _uid("ct_series", str(k))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SpacingBetweenSlices = f"{SERIES_STEP_MM:g}"
        pydicom.dcmwrite(folder / name, ds, enforce_file_format=True)


def mr_brain(out: Path) -> None:
    """A 2 mm crop of the MNI ICBM152 2009a T1 template: uint8, shape (80, 96, 16) on disk."""
    import nibabel as nib
    from nilearn.datasets import MNI152_FILE_PATH
    template = nib.load(MNI152_FILE_PATH)                       # 1 mm, (197, 233, 189) uint8
    data = np.asanyarray(template.dataobj)[::2, ::2, ::2]       # 2 mm grid, (99, 117, 95)
    x0, y0, z0 = 10, 12, 34
    crop = np.ascontiguousarray(data[x0:x0 + 80, y0:y0 + 96, z0:z0 + 16])
    affine = template.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = template.affine[:3, :3] @ (2 * np.array([x0, y0, z0])) + template.affine[:3, 3]
    img = nib.Nifti1Image(crop, affine)
    img.header.set_data_dtype(np.uint8)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"MNI ICBM152 2009a T1, 2mm crop (DURR sample)"
    img.set_qform(affine, code=4)                               # 4 = MNI152
    img.set_sform(affine, code=4)
    raw = img.to_bytes()
    with open(out / "mr_brain.nii.gz", "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(raw)


def ct_spine_png(out: Path, hu: np.ndarray) -> None:
    """The spine slice in a bone window [-450, 1050] HU, 2x2 mean-downsampled, 8-bit PNG."""
    from PIL import Image
    small = hu.reshape(256, 2, 256, 2).mean(axis=(1, 3))
    codes = np.rint(np.clip((small + 450.0) / 1500.0, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(codes).save(buf, format="PNG", optimize=True)
    (out / "ct_spine.png").write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "samples")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _copy("CT_small.dcm", out, "ct_small.dcm")
    _copy("MR_small.dcm", out, "mr_small.dcm")
    _copy("emri_small.dcm", out, "mr_multiframe.dcm")
    hu = ct_spine(out)
    ct_series(out)
    mr_brain(out)
    ct_spine_png(out, hu)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"samples written to {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
