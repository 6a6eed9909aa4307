"""scripts/gpu_bench.py: runs on a torch-only machine, and survives a failing torch.compile."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from durr.control.unit import RestorationUnit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_bench.py"
HEAVY = ("monai", "gymnasium", "nibabel", "pydicom", "streamlit", "skimage", "scipy", "yaml", "tqdm")


@pytest.fixture(scope="module")
def bench():
    """scripts/gpu_bench.py imported as a module."""
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_quick_cpu_run_without_heavy_packages(tmp_path):
    stubs = tmp_path / "stubs"
    for name in HEAVY:  # shadow the installed packages: importing any of them fails
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": str(stubs), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--devices", "cpu", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["quick"] and set(result["devices"]) == {"cpu"}
    assert result["environment"]["torch"] == torch.__version__
    assert result["train"] and all(r["samples_per_s"] > 0 and r["ms_per_iter"] > 0 for r in result["train"])
    assert len(result["infer"]) == 4 and all(r["ms_per_slice"] > 0 for r in result["infer"])
    assert result["speedup"] == {"train": [], "infer": []}  # no CUDA row to compare
    assert "Inference" in proc.stdout


def test_failed_compile_is_reported_and_eager_row_kept(bench, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(RestorationUnit, "compile", fail)
    rows = bench.training_rows(torch.device("cpu"), bench.QUICK, bench.QUICK_TIMING[0], compile=True)
    eager, compiled = rows
    assert not eager["compiled"] and eager["samples_per_s"] > 0
    assert compiled["compiled"] and "no compiler" in compiled["compile_error"]
    assert "samples_per_s" not in compiled


def test_speedups_pair_cuda_rows_with_eager_cpu_rows(bench):
    rows = [{"device": "cpu", "steps": 8, "batch": 1, "precision": "fp32", "ms_per_slice": 100.0},
            {"device": "cuda", "steps": 8, "batch": 1, "precision": "fp32", "ms_per_slice": 4.0},
            {"device": "cuda", "steps": 8, "batch": 1, "precision": "bf16", "ms_per_slice": 2.0}]
    ratios = bench.speedups(rows, ("steps", "batch"), "ms_per_slice", higher_is_faster=False)
    assert [(r["cuda_precision"], r["cuda_over_cpu"]) for r in ratios] == [("fp32", 25.0), ("bf16", 50.0)]
