"""Data-parallel training under torchrun (gloo on CPU) follows the one-process run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "ddp_train_worker.py"
TORCHRUN = Path(sys.executable).parent / "torchrun"


def _run(out: Path, ranks: int, *extra) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if ranks == 1:
        cmd = [sys.executable, str(WORKER), str(out), *extra]
    else:
        cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", str(ranks), str(WORKER), str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0 and ranks > 1 and ("rendezvous" in log.lower() or "errno" in log.lower()):
        pytest.skip(f"torchrun cannot start {ranks} processes here: {log.strip().splitlines()[-1]}")
    assert proc.returncode == 0, log[-3000:]


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    _run(out, 1)
    return torch.load(out / "weights.pt", weights_only=True), out


@pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun beside the interpreter")
def test_two_ranks_equal_one_process_with_the_same_global_batch(single, tmp_path):
    one, one_dir = single
    _run(tmp_path, 2)
    two = torch.load(tmp_path / "weights.pt", weights_only=True)
    init = torch.load(tmp_path / "stage1" / "checkpoint.pt", weights_only=True)
    assert _max_diff(one["restorer"], two["restorer"]) <= 1e-5
    assert _max_diff(one["policy"], two["policy"]) <= 1e-5
    # not trivially equal: training moved the weights
    from conftest import make_tiny_durr

    start = make_tiny_durr("OT", "gaussian", seed=3).state_dict()
    unit = {k: v for k, v in two["restorer"].items() if k.startswith("unit.")}
    assert _max_diff(unit, {k: start[k] for k in unit}) > 1e-4
    # rank 0 alone wrote the log: one row per iteration
    rows = (tmp_path / "stage1" / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 4 and int(init["iteration"]) == 4


@pytest.mark.skipif(not TORCHRUN.exists(), reason="no torchrun beside the interpreter")
def test_resume_under_torchrun_equals_the_uninterrupted_run(single, tmp_path):
    one, _ = single
    _run(tmp_path, 2, "--stop-after", "2")
    assert int(torch.load(tmp_path / "stage1" / "checkpoint.pt", weights_only=True)["iteration"]) == 2
    _run(tmp_path, 2)
    resumed = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert _max_diff(one["restorer"], resumed["restorer"]) <= 1e-5


def test_global_batch_must_split_evenly():
    from durr.train.distributed import World, share

    assert share(8, World(1, 2)) == slice(4, 8)
    with pytest.raises(ValueError, match="multiple of the number of ranks"):
        share(6, World(0, 4))
