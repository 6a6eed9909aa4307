"""Speed of ``durr denoise``: one 512x512 CT slice, one 512x512 MR slice, and 512x512x64 DICOM
series end to end.

    python -m durr.bench.cli_speed [--threads 2] [--repeats 5] [--slices 64] [--series 1 10]
                                   [--model ct-lowdose] [--mr-model mr-rician]
                                   [--skip-slice] [--skip-mr] [--skip-volume]

Part 1, per slice: ``datasets/samples/ct_spine.dcm`` (512x512, 0.29 mm pixels) degraded with
``ct-lowdose`` at dose 0.025 (the heaviest unseen level), restored with the model (policy
stopping, median of ``--repeats`` timed runs after one warm-up), and scikit-image NLM and BM3D
timed on the same slice in the benchmark's CT window (``durr.bench.classical``; noise level
from ``estimate_sigma``, which under-estimates CT noise, so these are timings, not tuned
baselines). PSNR on [-1000, 1000] HU against the degradation's reference is shown alongside.

Part 1b, MR: the dev split's 484x484 Siemens T1 slice (``durr corpus build`` makes it),
reflect-padded to 512x512, degraded with ``mr-rician`` at s = 12 % (the heaviest unseen level)
and restored with the MR model by its policy. Skipped, with a note, without a corpus or model.

Part 2, end to end: a folder of ``N`` synthetic CT series (``--slices`` slices of 512x512 each,
the sample slice shifted and noised slice by slice, written as 16-bit DICOM) restored by the
real command ``python -m durr denoise`` in a fresh process for each ``N``. Reported: slices
per second (all slices / wall time of the command, start-up included; and / the scan time
the report records: read, restore, write), and the command's peak resident memory
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper whose only child is the command).

Without a shipped ``models/ct-lowdose`` the default architecture with untrained weights is
timed instead, with a fixed number of steps (``--fallback-steps``); the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "datasets" / "samples" / "ct_spine.dcm"
DOSE = 0.025
SEED = 0


def _model(name: str, fallback_steps: int, folder: Path):
    """(model folder, description, extra CLI args): the shipped model, or an untrained stand-in."""
    from durr.errors import ModelError
    from durr.infer import load_model, resolve_model_dir, save_model

    try:
        path = resolve_model_dir(name)
        load_model(path)
        return path, f"{name} (shipped, policy stopping)", []
    except ModelError as err:
        from durr.control import DURR, DURRConfig

        import torch

        torch.manual_seed(0)
        path = save_model(folder / "untrained-ct", DURR(DURRConfig(modality="CT", family="ct-lowdose")))
        note = (f"NO SHIPPED MODEL ({err}); default architecture, untrained weights, "
                f"fixed {fallback_steps} steps")
        return path, note, ["--steps", str(fallback_steps)]


def _timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def bench_slice(model_dir: Path, model_note: str, extra: list[str], repeats: int) -> list[str]:
    from durr.bench import classical
    from durr.infer import load_model, restore_slices
    from durr.io import load_scan

    clean = load_scan(SAMPLE)
    try:
        from durr.degrade import get_degradation

        noisy, reference = get_degradation("ct-lowdose").apply_numpy(
            clean.array, DOSE, SEED, spacing_mm=float(clean.spacing[-1]))
        degradation = f"ct-lowdose, dose {DOSE} (unseen), seed {SEED}"
    except ImportError as err:  # durr.degrade not installed in this checkout
        rng = np.random.default_rng(SEED)
        reference = clean.array
        noisy = (clean.array + rng.normal(0, 60.0, clean.array.shape)).astype(np.float32)
        degradation = f"white Gaussian noise 60 HU (durr.degrade unavailable: {err})"
    try:
        from durr.metrics import score

        def quality(x):
            return f"{score(x, reference, 'CT')['psnr']:.2f}"
    except ImportError:
        def quality(x):
            return "-"

    model = load_model(model_dir)
    kwargs = {"mode": "fixed", "steps": int(extra[1])} if extra else {"mode": "policy"}
    seconds, (restored, info) = _timed(lambda: restore_slices(model, noisy[None], device="cpu", **kwargs), repeats)
    lines = [f"512x512 CT slice `{SAMPLE.name}`: {degradation}; {os.environ.get('OMP_NUM_THREADS')} threads; "
             f"median of {repeats} runs after a warm-up", "",
             "| method | median s / slice | steps | PSNR dB [-1000, 1000] HU |", "|---|---|---|---|",
             f"| degraded input | - | - | {quality(noisy)} |",
             f"| DURR: {model_note} | {seconds:.3f} | {int(info.steps[0])} | {quality(restored[0])} |"]
    window = classical.to_window(noisy, "CT")
    u = window.forward(noisy)
    sigma = classical.estimate_noise(u)
    reps = max(1, min(repeats, 3))
    t_nlm, nlm_out = _timed(lambda: classical.nlm(u, sigma), reps)
    lines.append(f"| NLM (scikit-image, fast mode, sigma from estimate_sigma) | {t_nlm:.3f} | - | "
                 f"{quality(window.inverse(nlm_out))} |")
    missing = classical.bm3d_missing_reason()
    if missing is None:
        t_bm3d, bm3d_out = _timed(lambda: classical.bm3d_denoise(u, sigma), reps)
        lines.append(f"| BM3D (bm3d package, sigma from estimate_sigma) | {t_bm3d:.3f} | - | "
                     f"{quality(window.inverse(bm3d_out))} |")
    else:
        lines.append(f"| BM3D | not run: {missing} | - | - |")
    return lines


MR_LEVEL = 12.0
MR_SOURCE = "siemens-t1"


def bench_mr_slice(model_name: str, repeats: int) -> list[str]:
    """Median seconds of the MR model's policy on a 512x512 MR slice at the heaviest unseen level."""
    from durr.data.corpus import load_split
    from durr.degrade import get_degradation
    from durr.infer import load_model, resolve_model_dir, restore_slices
    from durr.metrics import score

    try:
        model = load_model(resolve_model_dir(model_name))
        dev = load_split("mr", "dev")
        index = dev.source_ids.index(MR_SOURCE)
    except (OSError, ValueError) as err:  # ModelError and a missing corpus are ValueErrors
        return [f"512x512 MR slice: not run ({err})"]
    image = dev.images[index]
    pad = [((512 - n) // 2, 512 - n - (512 - n) // 2) for n in image.shape]
    clean = np.pad(image, pad, mode="reflect").astype(np.float32)
    noisy, reference = get_degradation("mr-rician").apply_numpy(clean, MR_LEVEL, SEED)
    seconds, (restored, info) = _timed(lambda: restore_slices(model, noisy[None], device="cpu"), repeats)
    steps = int(info.steps[0])
    return [f"512x512 MR slice: dev `{MR_SOURCE}` ({image.shape[0]}x{image.shape[1]}) reflect-padded, mr-rician "
            f"s = {MR_LEVEL:g} % (unseen), seed {SEED}; {os.environ.get('OMP_NUM_THREADS')} threads; "
            f"median of {repeats} runs after a warm-up", "",
            "| method | median s / slice | steps | s / step | PSNR dB |", "|---|---|---|---|---|",
            f"| degraded input | - | - | - | {score(noisy, reference, 'MR')['psnr']:.2f} |",
            f"| DURR: {model_name} (policy stopping) | {seconds:.3f} | {steps} | {seconds / max(steps, 1):.4f} | "
            f"{score(restored[0], reference, 'MR')['psnr']:.2f} |"]


def write_series(folder: Path, slices: int, seed: int) -> None:
    """A synthetic CT series: the sample slice rolled 2 rows per slice plus 20 HU noise, 16-bit."""
    import pydicom
    from pydicom.uid import generate_uid

    template = pydicom.dcmread(SAMPLE)
    hu = template.pixel_array.astype(np.float64) * float(template.RescaleSlope) + float(template.RescaleIntercept)
    rng = np.random.default_rng(seed)
    series_uid = generate_uid()
    folder.mkdir(parents=True)
    position = [float(v) for v in template.get("ImagePositionPatient", [0, 0, 0])]
    for k in range(slices):
        ds = template.copy()
        values = np.roll(hu, 2 * k, axis=0) + rng.normal(0, 20.0, hu.shape)
        codes = np.rint((values - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
        codes = np.clip(codes, 0, 2 ** int(ds.BitsStored) - 1).astype(np.uint16)
        ds.PixelData = codes.tobytes()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [position[0], position[1], position[2] + 2.5 * k]
        ds.ImageOrientationPatient = ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])
        ds.SliceThickness = 2.5
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)


def _peak_of_command(cmd: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, output) of ``cmd`` run as the only child of a wrapper."""
    wrapper = ("import json, resource, subprocess, sys, time\n"
               "t0 = time.perf_counter()\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "wall = time.perf_counter() - t0\n"
               "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
               "tail = p.stdout[-3000:] + p.stderr[-3000:]\n"
               "print(json.dumps({'wall': wall, 'peak': peak, 'rc': p.returncode, 'out': tail}))\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"durr denoise failed ({result['rc']}):\n{result['out']}")
    return result["wall"], result["peak"], result["out"]


def bench_volume(model_dir: Path, model_note: str, extra: list[str], slices: int, counts: list[int],
                 threads: int, work: Path) -> list[str]:
    from durr.infer.batch import read_report

    source = work / "one"
    write_series(source / "series_000", slices, seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    lines = [f"512x512x{slices} synthetic CT series (16-bit DICOM), `python -m durr denoise` end to end; "
             f"{threads} threads; model: {model_note}", "",
             "| series | slices | wall s (command) | slices / s (command) | slices / s (read+restore+write) "
             "| steps mean | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for n in counts:
        folder = work / f"in-{n}"
        for i in range(n):
            if i == 0:
                shutil.copytree(source / "series_000", folder / "series_000")
            else:
                write_series(folder / f"series_{i:03d}", slices, seed=i)
        out = work / f"out-{n}"
        report = work / f"report-{n}.json"
        cmd = [sys.executable, "-m", "durr", "denoise", str(folder), "-o", str(out), "--model", str(model_dir),
               "--device", "cpu", "--report", str(report), *extra]
        wall, peak, _ = _peak_of_command(cmd, env)
        rows = read_report(report)
        total = sum(int(r["slices"]) for r in rows)
        scan_seconds = sum(float(r["seconds"]) for r in rows)
        steps = np.mean([float(r["steps_mean"]) for r in rows])
        lines.append(f"| {n} | {total} | {wall:.1f} | {total / wall:.2f} | {total / scan_seconds:.2f} | "
                     f"{steps:.1f} | {peak / 2**20:.0f} |")
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.cli_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--series", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--model", default="ct-lowdose")
    parser.add_argument("--fallback-steps", type=int, default=8,
                        help="steps of the untrained stand-in when no shipped model exists (default: %(default)s)")
    parser.add_argument("--mr-model", default="mr-rician")
    parser.add_argument("--skip-slice", action="store_true")
    parser.add_argument("--skip-mr", action="store_true")
    parser.add_argument("--skip-volume", action="store_true")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="durr-cli-speed-") as tmp:
        work = Path(tmp)
        model_dir, note, extra = _model(args.model, args.fallback_steps, work)
        print(f"# durr denoise speed ({time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
              f"{os.cpu_count()} CPUs visible)\n", flush=True)
        if not args.skip_slice:
            print("\n".join(bench_slice(model_dir, note, extra, args.repeats)) + "\n", flush=True)
        if not args.skip_mr:
            print("\n".join(bench_mr_slice(args.mr_model, args.repeats)) + "\n", flush=True)
        if not args.skip_volume:
            print("\n".join(bench_volume(model_dir, note, extra, args.slices, args.series, args.threads, work)),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
