"""``durr denoise``: batch restoration of folders, resume after a kill, sharding under torchrun.

Every model here is a tiny untrained one (4 channels, 3 layers) written to a temporary folder:
the tests check plumbing (paths, headers, geometry, resume, ranks), not restoration quality.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

from durr.cli import main
from durr.infer import load_model, restore_slices, save_model
from durr.infer.batch import (Settings, clean_leftovers, completed, plan, publish, read_report,
                              record_path)
from durr.io import load_scan, save_scan

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "datasets" / "samples"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _one_thread_alone(monkeypatch):
    """One CPU thread (the machine is shared), and never a stray torchrun environment."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_durr) -> Path:
    """A models/ root holding tiny ct-lowdose, mr-rician and gaussian models."""
    root = tmp_path_factory.mktemp("models")
    for seed, (modality, family) in enumerate((("CT", "ct-lowdose"), ("MR", "mr-rician"), ("OT", "gaussian"))):
        save_model(root / family, tiny_durr(modality, family, seed))
    return root


def _cli(*args) -> int:
    return main(["denoise", *map(str, args)])


def _second_series(dest: Path) -> None:
    """A second CT series (new SeriesInstanceUID, other pixel values) made from the sample one."""
    scan = load_scan(SAMPLES / "ct_series")
    save_scan(scan.with_array(scan.array[:, ::-1].copy()), dest, like=scan)


def _dicom_headers(folder: Path) -> dict[str, pydicom.Dataset]:
    return {p.name: pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())}


def _hidden(folder: Path) -> list[Path]:
    """Hidden entries anywhere under ``folder``, except the completion records in ``.durr``."""
    return [p for p in folder.rglob(".*") if p.relative_to(folder).parts[0] != ".durr"]


# --------------------------------------------------------------------------- the done-when test


def test_folder_of_series_nifti_and_unreadable(tmp_path, models, monkeypatch, capsys):
    monkeypatch.setenv("DURR_MODELS", str(models))
    inp, out = tmp_path / "study", tmp_path / "out"
    shutil.copytree(SAMPLES / "ct_series", inp / "series_a")
    _second_series(inp / "series_b")
    shutil.copy(SAMPLES / "mr_brain.nii.gz", inp / "brain.nii.gz")
    (inp / "broken.dcm").write_bytes(b"this is not a scan\n" * 10)

    import durr.infer
    loads = []
    real_load = durr.infer.load_model
    monkeypatch.setattr(durr.infer, "load_model", lambda name: loads.append(name) or real_load(name))

    status = _cli(inp, "-o", out, "--max-steps", 6, "--report", out / "report.csv")
    captured = capsys.readouterr()
    assert status == 1
    failure_lines = [line for line in captured.err.splitlines() if "broken.dcm" in line]
    assert failure_lines == [f"durr denoise: failed: {inp / 'broken.dcm'}: not a DICOM file (no DICOM header)"]
    assert "1 failed" in captured.out and "failed scans:" in captured.out
    assert sorted(loads) == ["ct-lowdose", "gaussian"]  # one load per model, not per scan

    uids_in = set()
    uids_out = set()
    for name in ("series_a", "series_b"):
        src, dst = _dicom_headers(inp / name), _dicom_headers(out / "study" / name)
        assert list(dst) == list(src)                     # same file names
        series_uid = {str(ds.SeriesInstanceUID) for ds in dst.values()}
        assert len(series_uid) == 1
        uids_in |= {str(ds.SeriesInstanceUID) for ds in src.values()}
        uids_out |= series_uid
        for fname, ds in dst.items():
            assert ds.SOPInstanceUID != src[fname].SOPInstanceUID
            for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
                assert list(np.atleast_1d(ds.get(kw))) == list(np.atleast_1d(src[fname].get(kw))), kw
        before, after = load_scan(inp / name), load_scan(out / "study" / name)
        np.testing.assert_allclose(after.affine, before.affine)
        assert after.spacing == before.spacing and after.array.shape == before.array.shape
        assert not np.array_equal(after.array, before.array)   # it was restored, not copied
    assert len(uids_out) == 2 and not uids_out & uids_in

    nii_in, nii_out = nib.load(inp / "brain.nii.gz"), nib.load(out / "study" / "brain.nii.gz")
    np.testing.assert_array_equal(nii_out.affine, nii_in.affine)
    assert nii_out.shape == nii_in.shape and nii_out.get_data_dtype() == nii_in.get_data_dtype()

    rows = {Path(r["input"]).name: r for r in read_report(out / "report.csv")}
    assert {k: r["status"] for k, r in rows.items()} == {
        "series_a": "restored", "series_b": "restored", "brain.nii.gz": "restored", "broken.dcm": "failed"}
    assert rows["series_a"]["model"] == "ct-lowdose" and rows["brain.nii.gz"]["model"] == "gaussian"
    assert rows["series_a"]["slices"] == "4" and rows["brain.nii.gz"]["slices"] == "16"
    assert int(rows["series_a"]["steps_max"]) <= 6
    assert _hidden(out) == []

    # a rerun skips the three complete outputs without touching them, and still reports the failure
    stamps = {p: p.stat().st_mtime_ns for p in (out / "study").rglob("*") if p.is_file()}
    assert _cli(inp, "-o", out, "--max-steps", 6, "--report", out / "again.json") == 1
    again = {Path(r["input"]).name: r["status"] for r in read_report(out / "again.json")}
    assert again == {"series_a": "skipped", "series_b": "skipped", "brain.nii.gz": "skipped", "broken.dcm": "failed"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # other settings, or --overwrite, restore again
    assert _cli(inp / "brain.nii.gz", "-o", out / "study", "--max-steps", 3, "--report", out / "r3.json") == 0
    assert [r["status"] for r in read_report(out / "r3.json")] == ["restored"]
    assert _cli(inp / "brain.nii.gz", "-o", out / "study", "--max-steps", 3, "--overwrite",
                "--report", out / "r4.json") == 0
    assert [r["status"] for r in read_report(out / "r4.json")] == ["restored"]


# --------------------------------------------------------------------------- kill and resume


def test_sigkill_mid_batch_then_rerun(tmp_path, models):
    inp, out = tmp_path / "in", tmp_path / "out"
    names = [f"s{k}" for k in range(6)]
    for name in names:
        shutil.copytree(SAMPLES / "ct_series", inp / name)
    args = [inp, "-o", out, "--model", models / "ct-lowdose", "--steps", 25, "--batch-size", 2,
            "--report", out / "report.json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "durr", "denoise", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finals = [out / "in" / name for name in names]
    deadline = time.monotonic() + 60
    try:
        while not any(p.exists() for p in finals):
            assert proc.poll() is None, f"the batch ended before any output: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no output within 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    done = [p for p in finals if p.exists()]
    assert 0 < len(done) < len(finals), "the kill did not land mid-batch"
    inode = {p: (p.stat().st_ino, sorted(f.stat().st_mtime_ns for f in p.iterdir())) for p in done}
    for p in done:                                   # whatever was there at the kill is whole
        assert load_scan(p).array.shape == (4, 128, 128)

    assert _cli(*args) == 0
    rows = {Path(r["output"]).name: r["status"] for r in read_report(out / "report.json")}
    assert rows == {p.name: ("skipped" if p in done else "restored") for p in finals}
    assert {p: (p.stat().st_ino, sorted(f.stat().st_mtime_ns for f in p.iterdir())) for p in done} == inode
    for p in finals:
        assert load_scan(p).array.shape == (4, 128, 128)
    assert _hidden(out) == []


def test_interrupted_publish_and_damaged_outputs_are_redone(tmp_path, models):
    """A kill between the record and the rename, or an output changed after the fact, is redone."""
    src = tmp_path / "ct_small.dcm"
    shutil.copy(SAMPLES / "ct_small.dcm", src)
    out = tmp_path / "out"
    settings = Settings(model=str(models / "ct-lowdose"), mode="fixed", steps=2)
    args = [src, "-o", out, "--model", models / "ct-lowdose", "--steps", 2, "--report", out / "r.csv"]
    assert _cli(*args) == 0
    job = plan([src], out)[0]
    assert completed(job, settings, out) is not None
    assert completed(job, Settings(model=str(models / "ct-lowdose"), mode="fixed", steps=3), out) is None

    # killed after the record was written but before the staged output was moved into place
    job.output.rename(job.output.with_name(f".durr-stage-0123abcd-{job.output.name}"))
    assert completed(job, settings, out) is None
    assert _cli(*args) == 0
    assert [r["status"] for r in read_report(out / "r.csv")] == ["restored"]
    assert _hidden(out) == []

    # an output truncated by something else
    data = job.output.read_bytes()
    job.output.write_bytes(data[: len(data) // 2])
    assert completed(job, settings, out) is None
    assert _cli(*args) == 0
    assert [r["status"] for r in read_report(out / "r.csv")] == ["restored"]
    assert load_scan(job.output).array.shape == (128, 128)
    assert json.loads(record_path(out, job.output).read_text())["row"]["status"] == "restored"


# --------------------------------------------------------------------------- the engine's pieces


def test_plan_mirrors_folders_and_reports_problems(tmp_path):
    inp = tmp_path / "study"
    shutil.copytree(SAMPLES / "ct_series", inp / "a" / "series")
    shutil.copy(SAMPLES / "mr_small.dcm", inp / "mr.dcm")
    lone = tmp_path / "lone.nii.gz"
    shutil.copy(SAMPLES / "mr_brain.nii.gz", lone)
    other = tmp_path / "elsewhere" / "lone.nii.gz"
    other.parent.mkdir()
    shutil.copy(SAMPLES / "mr_brain.nii.gz", other)
    out = tmp_path / "out"
    jobs = plan([inp, lone, other, tmp_path / "missing.dcm"], out)
    assert [(j.output.relative_to(out).as_posix(), j.problem) for j in jobs[:3]] == [
        ("study/a/series", None), ("study/mr.dcm", None), ("lone.nii.gz", None)]
    assert "also the output of" in jobs[3].problem
    assert jobs[4].problem == "no such file or folder"
    assert [j.index for j in jobs] == list(range(5))
    with pytest.raises(Exception, match="inside the input folder"):
        plan([inp], inp / "restored")


def test_publish_replaces_a_series_folder_whole_and_leftovers_are_cleaned(tmp_path):
    out = tmp_path / "series"
    out.mkdir()
    (out / "OLD.dcm").write_bytes(b"old")
    staged = tmp_path / ".durr-stage-deadbeef-series"
    staged.mkdir()
    (staged / "IM1.dcm").write_bytes(b"new")
    publish(staged, out)
    assert [p.name for p in out.iterdir()] == ["IM1.dcm"] and not staged.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["series"]
    for name in (".durr-stage-0123abcd-series", ".series.durr-tmp-0123abcd",
                 "..durr-stage-0123abcd-series.durr-tmp-89abcdef", ".durr-aside-0123abcd-series"):
        (tmp_path / name).mkdir()
    (tmp_path / ".durr-stage-0123abcd-series2").mkdir()   # another output's: kept
    assert clean_leftovers(out) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".durr-stage-0123abcd-series2", "series"]


def test_volume_equals_slice_by_slice_whatever_the_batch_size(tmp_path, models):
    rng = np.random.default_rng(3)
    cases = {  # modality flag, model, volume, the model's working scale (HU / 1000 for CT)
        "ct": ("ct", models / "ct-lowdose", rng.normal(40.0, 120.0, (5, 40, 36)), 1000.0),
        "other": ("other", models / "gaussian", rng.random((5, 40, 36)), 1.0),
    }
    for key, (modality, model_dir, volume, scale) in cases.items():
        src = tmp_path / f"{key}.npy"
        np.save(src, volume.astype(np.float32))
        model = load_model(model_dir)
        by_slice = np.concatenate([restore_slices(model, volume[k:k + 1].astype(np.float32), max_steps=8)[0]
                                   for k in range(volume.shape[0])])
        for batch in (1, 2, 5, 16):
            out = tmp_path / f"out-{key}-{batch}"
            assert _cli(src, "-o", out, "--modality", modality, "--model", model_dir,
                        "--max-steps", 8, "--batch-size", batch) == 0
            restored = np.load(out / src.name)
            assert restored.shape == volume.shape
            assert np.max(np.abs(restored - by_slice)) / scale <= 1e-5, (key, batch)
        assert not np.allclose(by_slice, volume)


# --------------------------------------------------------------------------- torchrun


def test_torchrun_two_ranks_do_each_scan_once(tmp_path, models):
    torchrun = VENV_BIN / "torchrun"
    if not torchrun.exists():
        pytest.skip(f"no torchrun beside {sys.executable}")
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(SAMPLES / "ct_series", inp / "series_a")
    _second_series(inp / "series_b")
    for name in ("ct_small.dcm", "ct_spine.png", "mr_small.dcm"):
        shutil.copy(SAMPLES / name, inp / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "durr", "denoise", str(inp),
           "-o", str(out), "--model", str(models / "ct-lowdose"), "--steps", "2", "--report", str(out / "r.json")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and "restored:" not in log and ("rendezvous" in log.lower() or "errno" in log.lower()):
        pytest.skip(f"torchrun cannot start two processes here: {log.strip().splitlines()[-1]}")
    assert proc.returncode == 0, log[-3000:]
    rows = read_report(out / "r.json")
    assert [Path(r["input"]).name for r in rows] == ["ct_small.dcm", "ct_spine.png", "mr_small.dcm",
                                                     "series_a", "series_b"]
    assert [r["status"] for r in rows] == ["restored"] * 5
    assert [r["rank"] for r in rows] == [0, 1, 0, 1, 0]                 # scan i to rank i % 2
    for r in rows:                                                       # each restored exactly once
        assert log.count(f"restored: {r['input']} ->") == 1, r["input"]
    assert "durr denoise: 5 scans: 5 restored" in proc.stdout
    for name in ("series_a", "series_b", "ct_small.dcm", "ct_spine.png", "mr_small.dcm"):
        load_scan(out / "in" / name)


def test_missing_models_fail_their_scans_or_the_command(tmp_path, models, monkeypatch, capsys):
    only_ct = tmp_path / "models"
    shutil.copytree(models / "ct-lowdose", only_ct / "ct-lowdose")
    monkeypatch.setenv("DURR_MODELS", str(only_ct))
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(SAMPLES / "ct_small.dcm", inp / "ct.dcm")
    shutil.copy(SAMPLES / "mr_brain.nii.gz", inp / "brain.nii.gz")
    out = tmp_path / "out"
    assert _cli(inp, "-o", out, "--max-steps", 2, "--report", out / "r.json") == 1
    rows = {Path(r["input"]).name: r for r in read_report(out / "r.json")}
    assert rows["ct.dcm"]["status"] == "restored"
    assert rows["brain.nii.gz"]["status"] == "failed"
    assert rows["brain.nii.gz"]["error"].startswith("model: gaussian: no such model folder")
    capsys.readouterr()
    assert _cli(inp, "-o", tmp_path / "out2", "--model", tmp_path / "nowhere") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such model folder" in err[0]
    assert not (tmp_path / "out2").exists()


def test_steps_sure_restores_white_noise_images_and_refuses_other_models(tmp_path, models, capsys):
    src = tmp_path / "photo.png"
    shutil.copy(SAMPLES / "ct_spine.png", src)
    out = tmp_path / "out"
    assert _cli(src, "-o", out, "--model", models / "gaussian", "--steps", "sure", "--max-steps", 4,
                "--report", out / "r.json") == 0
    row = json.loads((out / "r.json").read_text())["scans"][0]
    assert row["status"] == "restored" and 0 <= row["steps_max"] <= 4
    # a CT model's noise is not white: the scan fails with the reason, the command says so
    assert _cli(SAMPLES / "ct_small.dcm", "-o", tmp_path / "ct", "--model", models / "ct-lowdose",
                "--steps", "sure") == 1
    assert "white Gaussian noise" in capsys.readouterr().err


def test_slices_the_policy_runs_to_the_step_limit_are_counted_and_flagged(tmp_path, tiny_durr, capsys):
    model = tiny_durr("CT", "ct-lowdose", 0)
    with torch.no_grad():  # a policy that never says stop
        model.policy.net[-1].bias.fill_(-10.0)
    save_model(tmp_path / "never", model)
    out = tmp_path / "out"
    assert _cli(SAMPLES / "ct_small.dcm", "-o", out, "--model", tmp_path / "never", "--max-steps", 2,
                "--report", out / "r.json") == 0
    row = json.loads((out / "r.json").read_text())["scans"][0]
    assert row["at_limit"] == row["slices"] == 1 and row["steps_max"] == 2
    text = capsys.readouterr().out
    assert "1 slice at the step limit" in text and "ran to the step limit (column 'at_limit')" in text
    # a fixed step count is asked for: nothing to flag
    assert _cli(SAMPLES / "ct_small.dcm", "-o", tmp_path / "fixed", "--model", tmp_path / "never", "--steps", 2,
                "--report", tmp_path / "fixed" / "r.json") == 0
    assert json.loads((tmp_path / "fixed" / "r.json").read_text())["scans"][0]["at_limit"] == 0


def test_slices_noisier_than_the_training_range_are_counted_and_flagged(tmp_path, tiny_durr, capsys):
    model = tiny_durr("CT", "ct-lowdose", 0)
    model.config.noise_ref = 1e-4          # any real scan is noisier than this
    save_model(tmp_path / "scaled", model)
    out = tmp_path / "out"
    assert _cli(SAMPLES / "ct_small.dcm", "-o", out, "--model", tmp_path / "scaled", "--max-steps", 2,
                "--report", out / "r.json") == 0
    row = json.loads((out / "r.json").read_text())["scans"][0]
    assert row["above_seen"] == row["slices"] == 1
    text = capsys.readouterr().out
    assert "1 slice noisier than the training range" in text and "(column 'above_seen')" in text
    model.config.noise_ref = None
    save_model(tmp_path / "plain", model)
    assert _cli(SAMPLES / "ct_small.dcm", "-o", tmp_path / "plain-out", "--model", tmp_path / "plain", "--max-steps", 2,
                "--report", tmp_path / "r2.json") == 0
    assert json.loads((tmp_path / "r2.json").read_text())["scans"][0]["above_seen"] == 0


def test_scans_read_as_other_get_a_hint_unless_the_modality_was_given(tmp_path, tiny_durr, capsys):
    save_model(tmp_path / "m", tiny_durr("OT", "gaussian", 0))
    assert _cli(SAMPLES / "ct_spine.png", "-o", tmp_path / "auto", "--model", tmp_path / "m", "--steps", 1) == 0
    assert "1 restored scan(s) were read as 'other' (OT)" in capsys.readouterr().out
    assert _cli(SAMPLES / "ct_spine.png", "-o", tmp_path / "given", "--model", tmp_path / "m", "--steps", 1,
                "--modality", "other") == 0
    assert "read as 'other'" not in capsys.readouterr().out
