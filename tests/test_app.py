"""The Streamlit app: its plain helpers, and the page driven by ``streamlit.testing.v1.AppTest``.

Tiny models (4 channels, at most 4 steps) in a temporary ``DURR_MODELS`` folder and the small
samples of ``datasets/samples`` keep every restoration well under a second.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app/ lives beside the installed durr package
    sys.path.insert(0, str(ROOT))

from app import compute, export, uploads, views  # noqa: E402
from durr.commands import app as app_command  # noqa: E402
from durr.infer import load_model, restore_scan, save_model  # noqa: E402
from durr.io import load_scan  # noqa: E402

SAMPLES = ROOT / "datasets" / "samples"
APP = ROOT / "app" / "main.py"
MAX_STEPS = 4


def read(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def series_files() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((SAMPLES / "ct_series").iterdir())]


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def series_zip(extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in series_files():
            archive.writestr(f"study/ct_series/{name}", data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_durr) -> Path:
    root = tmp_path_factory.mktemp("models")
    for family, modality in (("ct-lowdose", "CT"), ("mr-rician", "MR"), ("gaussian", "OT")):
        save_model(root / family, tiny_durr(modality, family, max_steps=MAX_STEPS))
    return root


@pytest.fixture
def no_temp_left(tmp_path, monkeypatch):
    """Point tempfile at an empty folder; after the test, no durr-app-* folder may remain."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not list(folder.glob(uploads.TEMP_PREFIX + "*")), "temporary folders were left behind"


# --------------------------------------------------------------------------- uploads


def test_upload_single_dicom_nifti_png(no_temp_left):
    ct = uploads.read_upload([("ct_small.dcm", read("ct_small.dcm"))])
    assert ct.scan.modality == "CT" and ct.scan.array.shape == (128, 128) and ct.notes == []
    mr = uploads.read_upload([("mr_brain.nii.gz", read("mr_brain.nii.gz"))])
    assert mr.scan.array.shape == (16, 96, 80) and mr.scan.modality == "MR"
    assert "NIfTI does not record the modality" in mr.notes[0]
    forced = uploads.read_upload([("mr_brain.nii.gz", read("mr_brain.nii.gz"))], modality="OT")
    assert forced.scan.modality == "OT" and forced.notes == []
    png = uploads.read_upload([("ct_spine.png", read("ct_spine.png"))])
    assert png.scan.source_format == "png" and png.scan.modality == "OT"


def test_upload_series_as_files_and_as_zip(no_temp_left):
    files = uploads.read_upload(series_files())
    assert files.scan.source_format == "dicom-series" and files.scan.array.shape == (4, 128, 128)
    zipped = uploads.read_upload([("study.zip", series_zip({"study/README.txt": b"hi", "__MACOSX/._IM1": b"x"}))])
    np.testing.assert_array_equal(zipped.scan.array, files.scan.array)
    assert zipped.base_name == "study.zip" and "2 file(s)" in zipped.notes[0]


def _rgb_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def _nifti_4d() -> bytes:
    return nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.int16), np.eye(4)).to_bytes()


BAD_UPLOADS = {
    "corrupt": ([("broken.dcm", read("ct_small.dcm")[:3000])], "broken.dcm: truncated DICOM file"),
    "empty": ([("empty.dcm", b"")], "empty.dcm: empty file"),
    "unsupported": ([("notes.txt", b"hello")], "notes.txt: not a recognised scan format"),
    "rgb": ([("photo.png", _rgb_png())], "photo.png: colour (RGB) image"),
    "4d": ([("time.nii", _nifti_4d())], "time.nii: 4D NIfTI"),
    "bad zip": ([("a.zip", b"PK not really")], "a.zip: not a readable zip archive"),
    "zip without dicom": ([("b.zip", _zip_of({"x.txt": b"x"}))], "b.zip: holds no DICOM files"),
    "mixed": ([("a.dcm", read("ct_small.dcm")), ("b.png", read("ct_spine.png"))], "b.png: several files"),
    "two series": ([("mr.dcm", read("mr_small.dcm")), ("ct.dcm", read("ct_small.dcm"))],
                   "2 different DICOM series found"),
}




@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_give_one_clear_message(case, no_temp_left):
    files, expected = BAD_UPLOADS[case]
    with pytest.raises(uploads.UploadError) as caught:
        uploads.read_upload(files)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert str(no_temp_left) not in message  # names the upload, never the temporary path


def test_size_limits(no_temp_left):
    with pytest.raises(uploads.UploadError, match="ct_small.dcm: too large .*limit is"):
        uploads.read_upload([("ct_small.dcm", read("ct_small.dcm"))], limits=uploads.Limits(max_bytes=10_000))
    with pytest.raises(uploads.UploadError, match="too large once unpacked"):
        small_zip = _zip_of({"a.dcm": bytes(50_000)})
        uploads.read_upload([("z.zip", small_zip)], limits=uploads.Limits(max_bytes=20_000))
    with pytest.raises(uploads.UploadError, match="mr_brain.nii.gz: too large .*voxels"):
        uploads.read_upload([("mr_brain.nii.gz", read("mr_brain.nii.gz"))], limits=uploads.Limits(max_voxels=1000))
    limits = uploads.Limits.from_env({"DURR_APP_MAX_UPLOAD_MB": "0.5", "DURR_APP_MAX_VOXELS": "1e6"})
    assert limits.max_bytes == 512 * 1024 and limits.max_voxels == 1_000_000


def test_names_are_made_safe():
    assert uploads.safe_name("../../etc/passwd") == "passwd"
    assert uploads.safe_name("C:\\scans\\IM1") == "IM1"
    assert uploads.safe_name("..") == "upload" and uploads.safe_name(".hidden") == "hidden"
    assert uploads.digest([("a", b"1")]) != uploads.digest([("b", b"1")])


# --------------------------------------------------------------------------- export, views, compute


def test_export_round_trips_each_format(models, no_temp_left):
    for name, fmt in (("ct_small.dcm", "dicom"), ("mr_brain.nii.gz", "nifti"), ("ct_spine.png", "png")):
        loaded = uploads.read_upload([(name, read(name))])
        changed = loaded.scan.with_array(loaded.scan.array * 0.5)
        download = export.export_scan(changed, loaded.scan, loaded.base_name)
        assert download.file_name == export.download_name(name, fmt)
        back = uploads.read_upload([(download.file_name, download.data)], modality=loaded.scan.modality)
        assert back.scan.source_format == fmt and back.scan.array.shape == loaded.scan.array.shape
        np.testing.assert_allclose(back.scan.array, changed.array, atol=1.0 if fmt != "png" else 1 / 255)
    assert export.download_name("mr_brain.nii.gz", "nifti") == "mr_brain_restored.nii.gz"
    assert export.download_name("IM1", "dicom") == "IM1_restored.dcm"
    assert export.download_name("study.zip", "dicom-series") == "study_restored.zip"


def test_views():
    assert views.ct_window("lung") == (-1350.0, 150.0)
    image = np.linspace(-1000, 1000, 100).reshape(10, 10)
    shown = views.to_uint8(image, views.ct_window("soft tissue"))
    assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    lo, hi = views.percentile_window(np.ones((4, 4)))
    assert hi > lo
    diff, half = views.difference_view(np.array([[-2.0, 0.0, 2.0]]), half_range=2.0)
    assert diff.tolist() == [[0, 128, 255]] and half == 2.0
    figure = views.stop_probability_figure(np.array([0.1, 0.3, 0.7, np.nan]), chosen=2, oracle=1)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "policy stop: 2 steps" in labels and "oracle stop: 1 step" in labels
    assert views.format_level("ct-lowdose", 0.05, seen=False) == "0.05 dose fraction (unseen)"


def test_level_choices_reach_beyond_the_seen_range():
    ct = compute.level_choices((0.1, 0.5), (0.05, 0.025))
    assert ct[0] == 0.025 and ct[-1] == 0.5 and 0.1 in ct and 0.05 in ct
    mr = compute.level_choices((1.0, 5.0), (7, 9, 12))
    assert mr[0] == 1.0 and mr[-1] == 12.0 and not compute.is_seen(9.0, (1.0, 5.0))
    views = compute.level_choices((120.0, 360.0), (90.0, 60.0), grid=(360, 300, 240, 180, 144, 120, 90, 60))
    assert views == [60.0, 90.0, 120.0, 144.0, 180.0, 240.0, 300.0, 360.0]     # the family's own view counts


def test_trajectory_of_a_volume_slice_matches_the_whole_restoration(models):
    scan = load_scan(SAMPLES / "ct_series")
    model = load_model(models / "ct-lowdose")
    result = compute.restore(scan, model)
    assert result.trajectory is None and result.steps.shape == (4,)
    trajectory = compute.slice_trajectory(result, scan, model, 2)
    assert trajectory.steps == int(result.steps[2]) and trajectory.frames.shape[0] == trajectory.steps + 1
    np.testing.assert_allclose(trajectory.frames[-1], compute.stack(result.restored.array, result.axis)[2], atol=1e-2)


def test_find_model_explains_a_missing_model(tmp_path, monkeypatch, models):
    from durr.errors import ModelError

    monkeypatch.setenv("DURR_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="no trained model for CT"):
        compute.find_model("CT")
    with pytest.raises(ModelError, match="not a model folder"):
        compute.find_model("CT", str(tmp_path))
    assert compute.find_model("CT", str(models / "ct-lowdose")) == (models / "ct-lowdose").resolve()


def test_durr_app_command_line(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    app_command.add_arguments(parser)
    args = parser.parse_args(["--port", "8600", "--max-upload-mb", "50", "--models", str(tmp_path)])
    command = app_command.streamlit_command(args, python="python")
    assert command[:5] == ["python", "-m", "streamlit", "run", str(APP)]
    pairs = dict(zip(command[5::2], command[6::2]))
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8600"
    assert pairs["--server.maxUploadSize"] == "50" and pairs["--server.headless"] == "true"
    env = app_command.app_environment(args, {})
    assert env == {"DURR_APP_MAX_UPLOAD_MB": "50", "DURR_MODELS": str(tmp_path.resolve())}
    assert app_command.check(args) is None
    assert "no such folder" in app_command.check(parser.parse_args(["--models", str(tmp_path / "none")]))


# --------------------------------------------------------------------------- the page (AppTest)


@pytest.fixture
def page(models, monkeypatch, no_temp_left):
    """A fresh AppTest of app/main.py with the tiny models, empty caches, and downloads kept.

    AppTest gives every run a new in-memory media store; sharing one lets the test read the
    bytes behind a download button (``downloaded``).
    """
    import streamlit as st
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1 import app_test as app_test_module

    monkeypatch.setenv("DURR_MODELS", str(models))
    monkeypatch.delenv("DURR_APP_MAX_UPLOAD_MB", raising=False)
    storage = MemoryMediaFileStorage("/mock/media")
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", lambda endpoint: storage)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.storage = storage
    at.run()
    assert not at.exception
    return at


def downloaded(at) -> tuple[str, bytes]:
    (button,) = at.get("download_button")
    url = button.proto.url
    return url, at.storage.get_file(url.rsplit("/", 1)[-1]).content


def metric(at, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}; errors: {[e.value for e in at.error]}"
    return values[0]


def upload_and_restore(at, files: list[tuple[str, bytes]]):
    for name, data in files:
        at.file_uploader(key="upload").upload(name, data)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="restore").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def test_page_dicom_restore_steps_and_download(page, models, monkeypatch, tmp_path):
    calls = []
    real_restore = compute.restore
    monkeypatch.setattr(compute, "restore", lambda *a, **k: calls.append(1) or real_restore(*a, **k))
    upload_and_restore(page, [("ct_small.dcm", read("ct_small.dcm"))])
    original = load_scan(SAMPLES / "ct_small.dcm")
    expected, info = restore_scan(original, load_model(models / "ct-lowdose"))
    assert metric(page, "Steps chosen by the policy") == str(int(info.steps[0]))
    assert len(page.image) >= 4  # original, restored, difference, trajectory step (and the plot)

    url, data = downloaded(page)
    assert url.endswith(".dcm")
    ds = pydicom.dcmread(io.BytesIO(data))
    source = pydicom.dcmread(SAMPLES / "ct_small.dcm")
    assert (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
    for keyword in ("PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "SliceThickness", "Modality"):
        assert ds.get(keyword) == source.get(keyword), keyword
    (tmp_path / "restored.dcm").write_bytes(data)
    back = load_scan(tmp_path / "restored.dcm")
    assert back.spacing == original.spacing
    np.testing.assert_allclose(back.array, expected.array, atol=1.0)

    # moving sliders and changing the window reuses the cached restoration
    step = next(s for s in page.slider if s.label == "Step")
    step.set_value(0).run()
    page.radio(key="ct_window").set_value("bone").run()
    assert not page.exception and len(calls) == 1
    assert metric(page, "Steps chosen by the policy") == str(int(info.steps[0]))


def test_page_dicom_series_zip_download(page, models):
    upload_and_restore(page, [("study.zip", series_zip())])
    scan = load_scan(SAMPLES / "ct_series")
    _, info = restore_scan(scan, load_model(models / "ct-lowdose"))
    middle = scan.array.shape[0] // 2
    assert metric(page, "Steps chosen by the policy") == str(int(info.steps[middle]))
    _, data = downloaded(page)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(archive.namelist())
        assert names == [f"study_restored/{p.name}" for p in sorted((SAMPLES / "ct_series").iterdir())]
        for name in names:
            ds = pydicom.dcmread(io.BytesIO(archive.read(name)))
            source = pydicom.dcmread(SAMPLES / "ct_series" / name.split("/")[-1])
            assert ds.ImagePositionPatient == source.ImagePositionPatient
            assert ds.PixelSpacing == source.PixelSpacing and (ds.Rows, ds.Columns) == (source.Rows, source.Columns)
            assert ds.SeriesInstanceUID != source.SeriesInstanceUID


def test_page_nifti_restore_and_download(page, models, tmp_path):
    upload_and_restore(page, [("mr_brain.nii.gz", read("mr_brain.nii.gz"))])
    assert any("read as MR" in c.value for c in page.caption)
    original = load_scan(SAMPLES / "mr_brain.nii.gz", modality="MR")
    expected, info = restore_scan(original, load_model(models / "mr-rician"))
    middle = original.array.shape[0] // 2
    assert metric(page, "Steps chosen by the policy") == str(int(info.steps[middle]))
    page.slider(key=next(s.key for s in page.slider if s.label == "Slice")).set_value(3).run()
    assert metric(page, "Steps chosen by the policy") == str(int(info.steps[3]))

    url, data = downloaded(page)
    assert url.endswith(".gz") or url.endswith(".bin") or "." in url
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    source = nib.load(SAMPLES / "mr_brain.nii.gz")
    assert image.shape == source.shape
    np.testing.assert_array_equal(image.affine, source.affine)
    assert image.header.get_zooms() == source.header.get_zooms()
    assert image.get_data_dtype() == source.get_data_dtype()
    (tmp_path / "restored.nii.gz").write_bytes(data)
    back = load_scan(tmp_path / "restored.nii.gz", modality="MR")
    np.testing.assert_allclose(back.array, np.clip(expected.array, 0, 255), atol=1.0)


def test_page_corrupt_upload_shows_the_error(page):
    page.file_uploader(key="upload").upload("broken.dcm", read("ct_small.dcm")[:3000])
    page.run()
    assert not page.exception
    assert [e.value for e in page.error] == [
        "broken.dcm: truncated DICOM file: it ends inside the element that follows (0027,1030)"]
    assert not page.button  # nothing to restore


@pytest.mark.parametrize("case", ["rgb", "4d", "unsupported"])
def test_page_other_bad_uploads(page, case):
    files, expected = BAD_UPLOADS[case]
    for name, data in files:
        page.file_uploader(key="upload").upload(name, data)
    page.run()
    assert not page.exception and expected in page.error[0].value


def test_page_upload_over_the_limit(page, monkeypatch):
    monkeypatch.setenv("DURR_APP_MAX_UPLOAD_MB", "0.01")
    page.run()  # the uploader is rebuilt with the new limit
    page.file_uploader(key="upload").upload("ct_small.dcm", read("ct_small.dcm"))
    page.run()
    assert not page.exception and "ct_small.dcm: too large" in page.error[0].value


def test_page_without_a_model_says_so(page, monkeypatch, tmp_path):
    monkeypatch.setenv("DURR_MODELS", str(tmp_path))
    page.file_uploader(key="upload").upload("ct_small.dcm", read("ct_small.dcm"))
    page.run()
    assert not page.exception and "no trained model for CT" in page.error[0].value


def test_page_model_folder_from_the_sidebar(page, models):
    page.radio(key="source").set_value("Bundled sample").run()
    page.selectbox(key="sample").set_value("CT slice, 128x128 (ct_small.dcm)").run()
    page.text_input(key="model_folder").input(str(models / "gaussian")).run()
    assert any("trained for OT" in w.value for w in page.warning)
    page.button(key="restore").click().run()
    assert not page.exception and metric(page, "Steps chosen by the policy")


def test_page_study_mode(page):
    pytest.importorskip("durr.degrade", reason="durr.degrade not available yet")
    pytest.importorskip("durr.metrics", reason="durr.metrics not available yet")
    page.radio(key="source").set_value("Bundled sample").run()
    page.selectbox(key="sample").set_value("MR slice, 64x64 (mr_small.dcm)").run()
    page.radio(key="mode").set_value("Study").run()
    assert not page.exception and not page.error, [e.value for e in page.error]
    level = page.select_slider(key="level|mr-rician")
    assert level.options[0] == "1 % of r" and level.options[-1] == "12 % of r (unseen)"
    assert level.value == 7.0  # the first unseen level
    page.button(key="study").click().run()
    assert not page.exception and not page.error, [e.value for e in page.error]
    table = page.table[0].value
    assert list(table["steps"])[1:] and len(table) == 3
    psnr = [float(v) for v in table["PSNR (dB)"]]
    assert all(np.isfinite(psnr))


def test_page_warns_when_the_policy_runs_to_the_step_limit(page, tmp_path, tiny_durr):
    for name, bias in (("eager", 10.0), ("never", -10.0)):   # a policy that stops at once / never
        model = tiny_durr("CT", "ct-lowdose", max_steps=MAX_STEPS)
        with torch.no_grad():
            model.policy.net[-1].bias.fill_(bias)
        save_model(tmp_path / name, model)
    page.radio(key="source").set_value("Bundled sample").run()
    page.selectbox(key="sample").set_value("CT slice, 128x128 (ct_small.dcm)").run()
    page.text_input(key="model_folder").input(str(tmp_path / "eager")).run()
    page.button(key="restore").click().run()
    assert metric(page, "Steps chosen by the policy") == "0"
    assert not any("step limit" in w.value for w in page.warning)
    page.text_input(key="model_folder").input(str(tmp_path / "never")).run()
    page.button(key="restore").click().run()
    assert not page.exception and metric(page, "Steps chosen by the policy") == str(MAX_STEPS)
    assert any(f"1 of 1 slice(s) to the step limit ({MAX_STEPS} steps)" in w.value for w in page.warning)


def test_page_says_when_a_scan_is_noisier_than_the_training_range(page, tmp_path, tiny_durr):
    for name, noise_ref in (("scaled", 1e-4), ("plain", None)):   # any real scan is noisier than 1e-4
        model = tiny_durr("CT", "ct-lowdose", max_steps=MAX_STEPS)
        model.config.noise_ref = noise_ref
        save_model(tmp_path / name, model)
    page.radio(key="source").set_value("Bundled sample").run()
    page.selectbox(key="sample").set_value("CT slice, 128x128 (ct_small.dcm)").run()
    page.text_input(key="model_folder").input(str(tmp_path / "plain")).run()
    page.button(key="restore").click().run()
    assert not page.exception and not any("training range" in i.value for i in page.info)
    page.text_input(key="model_folder").input(str(tmp_path / "scaled")).run()
    page.button(key="restore").click().run()
    assert not page.exception
    assert any("1 of 1 slice(s) are noisier than this model's training range" in i.value for i in page.info)
