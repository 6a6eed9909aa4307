"""Scan I/O: round trips for every sample and format, DICOM header changes, bad input, batch walking."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path, PurePath

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from durr.io import (ClippedValuesWarning, Scan, ScanError, ScanSource, find_scans, load_scan,
                     save_scan)
from durr.io.atomic import atomic_file, atomic_folder
from durr.io.dicom import DERIVATION_TEXT, SERIES_SUFFIX

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
SAMPLE_NAMES = ["ct_small.dcm", "ct_spine.dcm", "mr_small.dcm", "mr_multiframe.dcm", "ct_series",
                "mr_brain.nii.gz", "ct_spine.png"]
SERIES_ORDER = ["IM3.dcm", "IM1.dcm", "IM4.dcm", "IM2.dcm"]  # position order (see make_samples.py)

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")


# --------------------------------------------------------------------------- helpers


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file under ``folder`` (hidden ones included)."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_scan(a: Scan, b: Scan) -> None:
    assert a.array.dtype == b.array.dtype == np.float32
    assert a.array.shape == b.array.shape
    np.testing.assert_array_equal(a.array, b.array)
    assert a.modality == b.modality
    assert a.source_format == b.source_format
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=0, atol=1e-9)
    if a.affine is None:
        assert b.affine is None
    else:
        np.testing.assert_allclose(a.affine, b.affine, rtol=0, atol=1e-6)


def bad(path: Path, *words: str):
    """Context: expect one ScanError whose message names ``path`` and every word."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(ScanError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            message = str(self.info.value)
            assert str(path) in message, message
            for word in words:
                assert word.lower() in message.lower(), message
            assert "\n" not in message and "Traceback" not in message
            return handled
    return _Check()


def copy_sample(name: str, tmp_path: Path) -> Path:
    src, dst = SAMPLES / name, tmp_path / "in" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    return dst


# --------------------------------------------------------------------------- round trips


def test_samples_are_small_and_documented():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 3e6
    readme = (SAMPLES / "README.md").read_text()
    for name in SAMPLE_NAMES:
        assert name in readme


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_round_trip(name, tmp_path):
    scan = load_scan(SAMPLES / name)
    assert scan.array.dtype == np.float32 and scan.array.ndim in (2, 3)
    out = save_scan(scan, tmp_path / name)
    again = load_scan(out)
    assert_same_scan(scan, again)
    if scan.source_format == "dicom-series":
        assert sorted(p.name for p in out.iterdir()) == sorted(SERIES_ORDER)
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"


def test_sample_units_and_geometry():
    ct = load_scan(SAMPLES / "ct_small.dcm")
    ds = pydicom.dcmread(SAMPLES / "ct_small.dcm")
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(ct.array, hu.astype(np.float32))
    assert ct.modality == "CT" and ct.spacing == tuple(float(v) for v in ds.PixelSpacing)
    # affine maps (column, row, slice) to RAS: DICOM LPS with x, y negated
    corner = ct.affine @ [0, 0, 0, 1]
    np.testing.assert_allclose(corner[:3], [-1, -1, 1] * np.asarray(ds.ImagePositionPatient, float))
    mr = load_scan(SAMPLES / "mr_multiframe.dcm")
    assert mr.modality == "MR" and mr.array.shape == (10, 64, 64) and mr.spacing[0] == 1.2
    brain = load_scan(SAMPLES / "mr_brain.nii.gz")
    img = nib.load(SAMPLES / "mr_brain.nii.gz")
    assert brain.modality == "OT" and brain.array.shape == img.shape[::-1]
    np.testing.assert_array_equal(brain.array, img.get_fdata().T)       # array[k, j, i] = data[i, j, k]
    np.testing.assert_array_equal(brain.affine, img.affine)
    assert load_scan(SAMPLES / "mr_brain.nii.gz", modality="MR").modality == "MR"
    png = load_scan(SAMPLES / "ct_spine.png")
    assert png.meta["bit_depth"] == 8 and 0 <= png.array.min() and png.array.max() <= 1


def test_restored_values_are_written(tmp_path):
    ct = load_scan(SAMPLES / "ct_small.dcm")
    restored = ct.with_array(ct.array + 10.4)
    again = load_scan(save_scan(restored, tmp_path / "r.dcm", like=ct))
    np.testing.assert_array_equal(again.array, ct.array + 10)            # rounded to stored codes


@pytest.mark.parametrize("kind", ["png8", "png16", "tiff8", "tiff16", "tiff_float", "tiff_stack",
                                  "npy2d", "npy3d", "nii2d", "nii_int16_scaled", "nii_float_be"])
def test_format_round_trip(kind, tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    if kind.startswith("png"):
        depth = 8 if kind == "png8" else 16
        codes = rng.integers(0, 2 ** depth, (20, 30)).astype(f"uint{depth}")
        path = src / "x.png"
        Image.fromarray(codes).save(path)
    elif kind.startswith("tiff"):
        import tifffile
        codes = {"tiff8": rng.integers(0, 256, (20, 30)).astype(np.uint8),
                 "tiff16": rng.integers(0, 65536, (20, 30)).astype(np.uint16),
                 "tiff_float": rng.normal(size=(20, 30)).astype(np.float32),
                 "tiff_stack": rng.integers(0, 65536, (3, 20, 30)).astype(np.uint16)}[kind]
        path = src / "x.tif"
        tifffile.imwrite(path, codes, photometric="minisblack")
    elif kind.startswith("npy"):
        codes = rng.normal(size=(20, 30) if kind == "npy2d" else (3, 20, 30))
        path = src / "x.npy"
        np.save(path, codes)
    else:
        path = src / ("x.nii" if kind == "nii2d" else "x.nii.gz")
        if kind == "nii2d":
            img = nib.Nifti1Image(rng.normal(size=(30, 20)).astype(np.float32), np.diag([0.5, 0.7, 1, 1]))
        elif kind == "nii_int16_scaled":   # nibabel picks scl_slope/scl_inter for int16 storage
            img = nib.Nifti1Image(rng.normal(size=(30, 20, 4)).astype(np.float32) * 1e5,
                                  np.diag([0.5, 0.7, 3, 1]))
            img.set_data_dtype(np.int16)
        else:
            hdr = nib.Nifti1Header(endianness=">")
            img = nib.Nifti1Image(rng.normal(size=(30, 20, 4)).astype(">f4"), np.eye(4), hdr)
        img.to_filename(path)
    scan = load_scan(path)
    if kind == "nii_int16_scaled":
        proxy = nib.load(path).dataobj                      # nibabel keeps the scaling here
        assert proxy.slope != 1.0 and proxy.dtype == np.int16
        np.testing.assert_array_equal(scan.array, nib.load(path).get_fdata().T.astype(np.float32))
    out = save_scan(scan, tmp_path / "out" / path.name)
    assert_same_scan(scan, load_scan(out))
    if kind.startswith("nii"):
        head = lambda p: (gzip.open if p.suffix == ".gz" else open)(p, "rb").read(348)
        assert head(out) == head(path)                      # header kept byte for byte
    if kind.startswith(("png", "tiff")):
        assert load_scan(out).meta["bit_depth"] == scan.meta["bit_depth"]
    if kind.startswith("npy"):
        assert np.load(out).dtype == np.float32


# --------------------------------------------------------------------------- DICOM headers

DOCUMENTED = {"SOPInstanceUID", "SeriesInstanceUID", "ImageType", "SeriesDescription",
              "DerivationDescription", "PixelData", "SmallestImagePixelValue",
              "LargestImagePixelValue"}


def element_diff(a: pydicom.Dataset, b: pydicom.Dataset) -> set[str]:
    tags = set(a.keys()) | set(b.keys())
    return {pydicom.datadict.keyword_for_tag(t) or str(t) for t in tags
            if t not in a or t not in b or a[t].value != b[t].value or a[t].VR != b[t].VR}


@pytest.mark.parametrize("source", ["ct_small.dcm", "mr_multiframe.dcm", "compressed"])
def test_dicom_only_documented_changes(source, tmp_path):
    path = Path(get_testdata_file("bad_sequence.dcm")) if source == "compressed" else SAMPLES / source
    scan = load_scan(path)
    out = save_scan(scan, tmp_path / "out.dcm")
    old, new = pydicom.dcmread(path), pydicom.dcmread(out)
    changed = element_diff(old, new)
    assert changed - DOCUMENTED == set()
    assert {"SOPInstanceUID", "SeriesInstanceUID", "ImageType", "SeriesDescription",
            "DerivationDescription"} <= changed
    assert new.SOPInstanceUID != old.SOPInstanceUID
    assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
    assert new.SeriesInstanceUID != old.SeriesInstanceUID
    assert list(new.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert list(new.ImageType[2:]) == list(old.ImageType[2:])
    assert new.SeriesDescription.endswith(SERIES_SUFFIX.strip())
    assert DERIVATION_TEXT in new.DerivationDescription
    for kw in ("RescaleSlope", "RescaleIntercept", "BitsAllocated", "BitsStored", "PixelRepresentation"):
        assert new.get(kw) == old.get(kw)
    meta_changed = element_diff(old.file_meta, new.file_meta)
    if source == "compressed":
        assert meta_changed <= {"MediaStorageSOPInstanceUID", "TransferSyntaxUID", "FileMetaInformationGroupLength"}
        assert new.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert "PixelData" in changed                        # encapsulated -> native
    else:
        assert meta_changed <= {"MediaStorageSOPInstanceUID", "FileMetaInformationGroupLength"}
        assert "PixelData" not in changed                    # same values, same bytes
    np.testing.assert_array_equal(new.pixel_array, old.pixel_array)


def test_series_written_as_one_new_series(tmp_path):
    scan = load_scan(SAMPLES / "ct_series")
    out = save_scan(scan.with_array(scan.array - 5), tmp_path / "restored")
    old = {p.name: pydicom.dcmread(p) for p in (SAMPLES / "ct_series").iterdir()}
    new = {p.name: pydicom.dcmread(p) for p in out.iterdir()}
    assert new.keys() == old.keys()
    series = {ds.SeriesInstanceUID for ds in new.values()}
    assert len(series) == 1 and series != {ds.SeriesInstanceUID for ds in old.values()}
    assert len({ds.SOPInstanceUID for ds in new.values()} | {ds.SOPInstanceUID for ds in old.values()}) == 8
    for name in new:
        assert element_diff(old[name], new[name]) - DOCUMENTED == set()
        assert new[name].ImagePositionPatient == old[name].ImagePositionPatient
        np.testing.assert_array_equal(new[name].pixel_array, old[name].pixel_array - 5)


# --------------------------------------------------------------------------- series order


def test_series_sorted_by_position_not_name():
    scan = load_scan(SAMPLES / "ct_series")
    assert scan.meta["filenames"] == SERIES_ORDER
    base = load_scan(SAMPLES / "ct_small.dcm").array
    for k in range(4):
        np.testing.assert_array_equal(scan.array[k], np.roll(base, 3 * k, axis=0))
    assert scan.spacing[0] == 5.0
    np.testing.assert_allclose(scan.affine[:3, 2], [0, 0, 5])


def _rewrite(folder: Path, edit) -> None:
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        edit(ds)
        ds.save_as(p)


def test_series_position_beats_instance_number_and_fallback(tmp_path):
    folder = copy_sample("ct_series", tmp_path)
    numbers = {"IM3.dcm": 4, "IM1.dcm": 1, "IM4.dcm": 3, "IM2.dcm": 2}   # scrambled
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = numbers[p.name]
        ds.save_as(p)
    assert load_scan(folder).meta["filenames"] == SERIES_ORDER
    _rewrite(folder, lambda ds: (delattr(ds, "ImagePositionPatient"), delattr(ds, "ImageOrientationPatient")))
    scan = load_scan(folder)
    assert scan.meta["filenames"] == ["IM1.dcm", "IM2.dcm", "IM4.dcm", "IM3.dcm"]
    assert scan.affine is None


def test_folder_with_two_series_refused(tmp_path):
    folder = copy_sample("ct_series", tmp_path)
    shutil.copyfile(SAMPLES / "ct_small.dcm", folder / "other.dcm")
    with bad(folder, "2 DICOM series", "find_scans"):
        load_scan(folder)


# --------------------------------------------------------------------------- bad input


def test_missing_and_empty_and_junk(tmp_path):
    with bad(tmp_path / "nope.dcm", "no such file"):
        load_scan(tmp_path / "nope.dcm")
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with bad(empty, "empty file"):
        load_scan(empty)
    for name in ("notes.txt", "image.dcm"):
        junk = tmp_path / name
        junk.write_text("not an image at all\n" * 20)
        with bad(junk, "not a"):
            load_scan(junk)
    fake_nii = tmp_path / "fake.nii.gz"
    fake_nii.write_text("hello")
    with bad(fake_nii, "NIfTI"):
        load_scan(fake_nii)


@pytest.mark.parametrize("cut", [0.01, 0.5, 0.999])
def test_truncated_dicom(cut, tmp_path):
    data = (SAMPLES / "ct_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: max(140, int(len(data) * cut))])
    with bad(path, "truncated"):
        load_scan(path)


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(SAMPLES / "ct_small.dcm")
    del ds.PixelData
    path = tmp_path / "nopix.dcm"
    ds.save_as(path)
    with bad(path, "no pixel data"):
        load_scan(path)
    with bad(Path(get_testdata_file("rtplan.dcm")), "no pixel data"):
        load_scan(get_testdata_file("rtplan.dcm"), modality="OT")


def test_colour_images_refused(tmp_path):
    rgb_dcm = Path(get_testdata_file("SC_rgb_small_odd.dcm"))
    with bad(rgb_dcm, "colour", "greyscale"):
        load_scan(rgb_dcm, modality="OT")
    png = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    with bad(png, "colour", "greyscale"):
        load_scan(png)
    import tifffile
    tif = tmp_path / "rgb.tif"
    tifffile.imwrite(tif, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with bad(tif, "colour", "greyscale"):
        load_scan(tif)


def test_4d_nifti_refused(tmp_path):
    path = tmp_path / "fmri.nii.gz"
    nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)).to_filename(path)
    with bad(path, "4D"):
        load_scan(path)


def test_non_finite_values_refused(tmp_path):
    arr = np.ones((8, 8), np.float32)
    arr[2, 3] = np.nan
    npy = tmp_path / "nan.npy"
    np.save(npy, arr)
    with bad(npy, "NaN"):
        load_scan(npy)
    arr[2, 3] = np.inf
    nii = tmp_path / "inf.nii"
    nib.Nifti1Image(arr[:, :, None], np.eye(4)).to_filename(nii)
    with bad(nii, "infinite"):
        load_scan(nii)


@pytest.mark.parametrize("name,package", [("bad_sequence.dcm", "pylibjpeg-libjpeg"),
                                          ("MR_small_jp2klossless.dcm", "pylibjpeg-openjpeg")])
def test_compressed_without_decoder(name, package, monkeypatch):
    from pydicom.pixels import get_decoder
    path = Path(get_testdata_file(name))
    decoder = get_decoder(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    monkeypatch.setattr(decoder, "_available", {})
    with bad(path, "compressed", "no decoder", package):
        load_scan(path)


def test_out_of_range_values_never_clipped_silently(tmp_path):
    scan = load_scan(SAMPLES / "ct_spine.dcm")          # 12-bit unsigned, intercept -1024
    low = scan.array.copy()
    low[0, :5] = -1100.0                                 # below the -1024 HU the file can hold
    out = tmp_path / "out"
    with bad(out / "low.dcm", "5 of", "-1024 to 3071 HU", "clip=True"):
        save_scan(scan.with_array(low), out / "low.dcm")
    assert not out.exists() or tree(out) == {}
    with pytest.warns(ClippedValuesWarning, match="5 of"):
        written = save_scan(scan.with_array(low), out / "low.dcm", clip=True)
    assert load_scan(written).array[0, :5].tolist() == [-1024.0] * 5
    png = load_scan(SAMPLES / "ct_spine.png")
    with bad(tmp_path / "x.png", "outside"):
        save_scan(png.with_array(png.array * 1.5), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_non_finite_scan_not_written(tmp_path):
    scan = load_scan(SAMPLES / "mr_brain.nii.gz")
    arr = scan.array.copy()
    arr[0, 0, 0] = np.nan
    with bad(tmp_path / "x.nii.gz", "NaN"):
        save_scan(scan.with_array(arr), tmp_path / "x.nii.gz")
    assert tree(tmp_path) == {}


def test_series_overflow_writes_nothing(tmp_path):
    scan = load_scan(SAMPLES / "ct_series")
    arr = scan.array.copy()
    arr[3, 0, 0] = 1e6
    with bad(tmp_path / "s", "outside"):
        save_scan(scan.with_array(arr), tmp_path / "s")
    assert tree(tmp_path) == {}


# --------------------------------------------------------------------------- never overwrite


def test_never_overwrites_input(tmp_path):
    path = copy_sample("ct_small.dcm", tmp_path)
    before = tree(tmp_path)
    scan = load_scan(path)
    for target in (path, tmp_path / "in" / "." / "ct_small.dcm", tmp_path / "in"):
        with bad(target, "refusing", "input"):
            save_scan(scan, target)
    folder = copy_sample("ct_series", tmp_path)
    series = load_scan(folder)
    for target in (folder, folder / "restored", folder / "IM1.dcm", tmp_path):
        with bad(target, "refusing"):
            save_scan(series, target)
    assert tree(tmp_path) == {**before, **{f"in/ct_series/{n}": h for n, h in tree(folder).items()}}
    link = tmp_path / "link.dcm"
    link.symlink_to(path)
    with bad(link, "refusing"):
        save_scan(scan, link)
    # like= sources are protected too
    nii = copy_sample("mr_brain.nii.gz", tmp_path)
    result = Scan(load_scan(nii).array, "MR", (1.0, 1.0, 1.0))     # an in-memory result
    with bad(nii, "refusing"):
        save_scan(result, nii, like=nii)
    assert tree(tmp_path)["in/mr_brain.nii.gz"] == tree(SAMPLES)["mr_brain.nii.gz"]


def test_like_and_name_checks(tmp_path):
    ct = load_scan(SAMPLES / "ct_small.dcm")
    array_only = Scan(ct.array + 1, "CT", ct.spacing)    # e.g. an in-memory result
    again = load_scan(save_scan(array_only, tmp_path / "a.dcm", like=ct))
    np.testing.assert_array_equal(again.array, ct.array + 1)
    with bad(tmp_path / "b.dcm", "shape"):
        save_scan(Scan(np.zeros((4, 4), np.float32), "CT", (1.0, 1.0)), tmp_path / "b.dcm", like=ct)
    with bad(tmp_path / "c.png", "DICOM"):
        save_scan(ct, tmp_path / "c.png")
    with bad(tmp_path / "d.dcm", ".nii"):
        save_scan(load_scan(SAMPLES / "mr_brain.nii.gz"), tmp_path / "d.dcm")
    with pytest.raises(ValueError, match="modality"):
        load_scan(SAMPLES / "ct_small.dcm", modality="PET")


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "f.bin") as f:
            f.write(b"half")
            raise RuntimeError("crash")
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "d") as d:
            (d / "x").write_bytes(b"1")
            raise RuntimeError("crash")
    assert tree(tmp_path) == {}
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_bytes(b"old")
    with atomic_folder(tmp_path / "d") as d:
        (d / "new").write_bytes(b"new")
    assert tree(tmp_path).keys() == {"d/new"}


# --------------------------------------------------------------------------- find_scans


def test_find_scans_mixed_folder(tmp_path):
    root = tmp_path / "batch"
    folder = root / "patient"
    shutil.copytree(SAMPLES / "ct_series", folder)
    second = generate_uid()
    for k, p in enumerate(sorted((SAMPLES / "ct_series").iterdir())[:2]):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = second
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"B{k}.dcm")
    shutil.copyfile(SAMPLES / "mr_brain.nii.gz", folder / "brain.nii.gz")
    (folder / "junk.txt").write_text("not a scan")
    (folder / ".hidden.durr-tmp-1234").write_text("half-written")
    shutil.copyfile(SAMPLES / "ct_small.dcm", root / "single.dcm")
    items = find_scans(root)
    by_format = {}
    for it in items:
        by_format.setdefault(it.format, []).append(it)
    assert len(by_format["dicom-series"]) == 2
    assert sorted(len(it.files) for it in by_format["dicom-series"]) == [2, 4]
    # two series share a folder: each gets its own sub-name, so outputs cannot collide
    assert {it.rel for it in by_format["dicom-series"]} == {
        PurePath("patient", f"series-{it.series_uid}") for it in by_format["dicom-series"]}
    assert len({it.rel for it in items}) == len(items) == 5
    assert [str(it.rel) for it in by_format["nifti"]] == ["patient/brain.nii.gz"]
    assert [str(it.rel) for it in by_format["dicom"]] == ["single.dcm"]
    (junk,) = by_format[None]
    assert not junk.ok and "not a recognised" in junk.problem and junk.path.name == "junk.txt"
    with bad(junk.path, "not a recognised"):
        load_scan(junk)
    for it in items:
        if it.ok:
            scan = it.load()
            assert_same_scan(scan, load_scan(it))
    four = next(it for it in by_format["dicom-series"] if len(it.files) == 4)
    assert four.load().meta["filenames"] == SERIES_ORDER
    with bad(folder, "2 DICOM series"):
        load_scan(folder)


def test_find_scans_on_samples():
    found = find_scans(SAMPLES)
    assert [it.path.name for it in found if not it.ok] == ["README.md"]     # reported, not skipped
    items = [it for it in found if it.ok]
    assert sorted(str(it.rel) for it in items) == sorted(SAMPLE_NAMES)   # a lone series keeps its folder name
    (series,) = [it for it in items if it.format == "dicom-series"]
    assert series.path == SAMPLES / "ct_series" and len(series.files) == 4


def test_find_scans_marks_problems(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)).to_filename(tmp_path / "4d.nii")
    data = (SAMPLES / "ct_small.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:401])          # inside an element
    (tmp_path / "cut2.dcm").write_bytes(data[:400])         # at an element boundary
    (tmp_path / "sub").mkdir()                                 # (own folder: same series as ok.dcm)
    (tmp_path / "sub" / "cut3.dcm").write_bytes(data[:len(data) // 2])   # inside the pixel data
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb.png")
    shutil.copyfile(SAMPLES / "ct_small.dcm", tmp_path / "ok.dcm")
    items = {it.path.name: it for it in find_scans(tmp_path)}
    assert items["ok.dcm"].ok and items["ok.dcm"].format == "dicom"
    assert "empty" in items["empty.nii.gz"].problem
    assert "4D" in items["4d.nii"].problem
    assert "truncated" in items["cut.dcm"].problem
    assert "truncated" in items["cut2.dcm"].problem
    assert items["cut3.dcm"].ok          # headers only: the damage shows when it is loaded
    with bad(items["cut3.dcm"].path, "truncated"):
        items["cut3.dcm"].load()
    assert "colour" in items["rgb.png"].problem
    assert isinstance(items["ok.dcm"], ScanSource)
    with bad(tmp_path / "missing", "no such"):
        find_scans(tmp_path / "missing")
