"""The benchmark harness (durr.bench): metric ranges, who sees the clean image, tuning on seen
levels only, unavailable methods listed with their reason, and a tiny end-to-end run.

Everything runs on 32 x 32 synthetic images and an untrained tiny DURR model, one torch thread.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch

from durr.bench import benchmark as bench
from durr.bench import classical
from durr.bench.methods import (BM3D, METHODS, DURRFixed, MethodInput, ModelBundle, TuningPair, TuningSet,
                                metric_space)
from durr.control.baseline import FixedCNNConfig, FixedDepthCNN
from durr.control.policy import PolicyConfig
from durr.control.restorer import DURR, DURRConfig
from durr.control.unit import UnitConfig
from durr.infer import save_model

torch.set_num_threads(1)
SIZE = 32


def smooth_image(seed: int, size: int = SIZE) -> np.ndarray:
    """A piecewise-smooth image in [0.1, 0.9]: a gradient and two discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = 0.3 + 0.3 * xx * rng.uniform(0.5, 1.0)
    for _ in range(2):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        img = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2, rng.uniform(0.1, 0.9), img)
    return img.astype(np.float32)


def tiny_model(modality="OT", family="gaussian", seed=0) -> DURR:
    torch.manual_seed(seed)
    return DURR(DURRConfig(modality=modality, family=family, max_steps=3,
                           unit=UnitConfig(channels=4, depth=2, last_layer_gain=1.0), policy=PolicyConfig(hidden=8)))


def write_corpus(folder, group, splits: dict[str, list[np.ndarray]]) -> None:
    """The corpus layout of durr.data.corpus: <group>/<split>.npz + <split>.json."""
    (folder / group).mkdir(parents=True, exist_ok=True)
    for split, images in splits.items():
        np.savez(folder / group / f"{split}.npz", **{f"slice_{i:05d}": a for i, a in enumerate(images)})
        index = [{"source_id": f"{split}-src{i % 2}", "spacing_mm": 1.0, "shape": list(a.shape)}
                 for i, a in enumerate(images)]
        (folder / group / f"{split}.json").write_text(json.dumps(index))


# --- metric ranges -----------------------------------------------------------------------------

def test_ct_is_scored_on_the_hu_window_minus_1000_to_1000():
    from durr.metrics import score

    rng = np.random.default_rng(0)
    reference = rng.uniform(-900, 900, (SIZE, SIZE)).astype(np.float32)
    reference[:4] = 1500.0  # bone above the window: clipped, so differences there do not count
    restored = reference + 10.0
    restored[:4] = 1900.0
    s = score(restored, reference, "CT")
    assert s["psnr"] == pytest.approx(20 * math.log10(2000 / 10.0) - 10 * math.log10(28 / 32), abs=1e-3)
    # the window every classical method denoises in maps the same range to [0, 1]
    window = classical.to_window(reference, "CT")
    assert window.forward(np.array([-1000.0, 1000.0])) == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("modality, scale", [("CT", 1000.0), ("MR", 300.0), ("OT", 1.0)])
def test_oracle_score_space_is_the_protocol_metric_space(modality, scale):
    """-MSE in ``metric_space`` ranks exactly like the protocol PSNR: same range, same clipping."""
    from durr.metrics import metric_window, score

    rng = np.random.default_rng(1)
    ref = (smooth_image(1) * (2 if modality == "CT" else 1) - (1 if modality == "CT" else 0)) * scale
    out = ref + rng.normal(0, 0.1 * scale, ref.shape).astype(np.float32)
    t_ref, t_out = (torch.from_numpy(a)[None, None] for a in (ref, out))
    window = metric_window(modality, ref)
    mse = float((metric_space(t_out, window) - metric_space(t_ref, window)).double().pow(2).mean())
    assert -10 * math.log10(mse) == pytest.approx(score(out, ref, modality)["psnr"], abs=1e-3)


def test_oracle_stops_at_the_best_protocol_psnr():
    from durr.degrade import get_degradation
    from durr.metrics import score

    model = tiny_model("MR", "mr-rician")
    clean = 300 * smooth_image(2)
    out = get_degradation("mr-rician")(torch.from_numpy(clean)[None, None], 5.0,
                                       generator=torch.Generator().manual_seed(0), spacing_mm=1.0)
    noisy, ref = out.noisy[0, 0].numpy(), out.reference[0, 0].numpy()
    oracle = METHODS["durr-oracle"](ModelBundle(model=model))
    got = oracle.restore(MethodInput(noisy, "MR", 1.0), reference=ref)
    per_step = [score(model.restore(torch.from_numpy(noisy)[None, None], mode="fixed", steps=k).output[0, 0].numpy(),
                      ref, "MR")["psnr"] for k in range(4)]
    assert got.steps == int(np.argmax(per_step))
    assert score(got.image, ref, "MR")["psnr"] == pytest.approx(max(per_step), abs=1e-4)


# --- levels, seeds, selection --------------------------------------------------------------------

def test_levels_seeds_and_selection():
    from durr.degrade import get_degradation

    ct = get_degradation("ct-lowdose")
    assert bench.parse_levels("seen,unseen", "ct-lowdose", ct) == [0.5, 0.25, 0.1, 0.05, 0.025]
    assert bench.parse_levels("unseen,0.3", "ct-lowdose", ct) == [0.3, 0.05, 0.025]
    with pytest.raises(ValueError, match="neither"):
        bench.parse_levels("loud", "ct-lowdose", ct)
    images = [bench.BenchImage(np.zeros((4, 4), np.float32), 1.0, sid, i)
              for i, sid in enumerate(["a", "a", "a", "a", "b", "c", "c"])]
    picked = bench.select_images(images, 4)
    assert [im.source_id for im in picked] == ["a", "a", "b", "c"]  # round-robin over sources
    seed = bench.level_seed("ct-lowdose", "dev", images[0], 0.05)
    assert seed == bench.level_seed("ct-lowdose", "dev", images[0], 0.05) != bench.level_seed("ct-lowdose", "dev", images[0], 0.1)


# --- tuning on seen levels only --------------------------------------------------------------------

def test_tuning_refuses_unseen_levels():
    from durr.degrade import get_degradation

    deg = get_degradation("gaussian")
    images = [bench.BenchImage(smooth_image(3), 1.0, "train", 0)]
    with pytest.raises(ValueError, match="seen levels only"):
        bench.build_tuning_set(deg, "gaussian", images, tune_level=20.0, levels=[20.0, 45.0])
    with pytest.raises(ValueError, match="seen levels only"):
        bench.build_tuning_set(deg, "gaussian", images, tune_level=55.0, levels=[20.0])
    pair = TuningPair(MethodInput(smooth_image(3), "OT", 1.0), smooth_image(3), 45.0)
    with pytest.raises(ValueError, match="seen levels only"):
        TuningSet([pair], 45.0, (5.0, 35.0), "OT")


def test_fixed_steps_fall_back_to_the_policy_mean_on_tuning_pairs():
    model = tiny_model()
    pairs = [TuningPair(MethodInput(smooth_image(i), "OT", 1.0), smooth_image(i), 20.0) for i in range(2)]
    method = DURRFixed(ModelBundle(model=model, config={}))
    params = method.tune(TuningSet(pairs, 20.0, (5.0, 35.0), "OT"))
    assert params["from"].startswith("rounded mean policy steps")
    assert method.steps == max(1, round(float(np.mean(params["policy_steps"]))))
    method = DURRFixed(ModelBundle(model=model, config={"fixed_steps": 2}))
    assert method.tune(TuningSet(pairs, 20.0, (5.0, 35.0), "OT"))["steps"] == 2


# --- unavailable methods are listed, with the reason ------------------------------------------------

def _tiny_run(**kwargs):
    images = [bench.BenchImage(smooth_image(i), 1.0, "dev", i) for i in range(2)]
    tuning = [bench.BenchImage(smooth_image(10), 1.0, "train", 0)]
    return bench.run_benchmark("gaussian", images, tuning, levels="20,45", **kwargs)


def test_missing_bm3d_marks_its_row_unavailable(monkeypatch, tmp_path):
    from durr.bench.report import write_table

    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    result = _tiny_run(methods=["degraded", "bm3d"])
    row = {m["name"]: m for m in result.methods}["bm3d"]
    assert row["reason"].startswith("pip install bm3d")
    assert not [r for r in result.records if r["method"] == "bm3d"]
    table = write_table(result, tmp_path / "table.md").read_text()
    assert "| BM3D, sigma = c * estimate_sigma (non-commercial) | not available: pip install bm3d" in table


def test_missing_model_lists_learned_methods_as_not_available(monkeypatch, tmp_path):
    monkeypatch.setenv("DURR_MODELS", str(tmp_path))
    result = _tiny_run(methods=["degraded", "fixed-cnn", "durr-fixed", "durr-policy", "durr-oracle"])
    reasons = {m["name"]: m["reason"] for m in result.methods}
    assert reasons["degraded"] is None
    for name in ("fixed-cnn", "durr-fixed", "durr-policy", "durr-oracle"):
        assert reasons[name].startswith("no model at") and reasons[name].endswith("gaussian")
    assert {r["method"] for r in result.records} == {"degraded"}


def test_bm3d_runs_when_installed():
    pytest.importorskip("bm3d")
    clean = smooth_image(4)
    noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    method = BM3D()
    method.c = 1.0
    out = method.restore(MethodInput(noisy, "OT", 1.0)).image
    assert out.shape == clean.shape and np.abs(out - clean).mean() < np.abs(noisy - clean).mean()


# --- end to end: the command on a tiny corpus, with every call recorded ----------------------------

class RecordingDegradation:
    """Wraps a degradation and records every (clean, level, reference) it produces."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, clean, level, **kwargs):
        out = self.inner(clean, level, **kwargs)
        self.calls.append((clean[0, 0].numpy().copy(), float(level), out.reference[0, 0].numpy().copy()))
        return out


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """``durr benchmark`` on 2 dev + 2 train images (32 x 32), every method but BM3D."""
    import durr.degrade
    from durr.cli import main

    tmp = tmp_path_factory.mktemp("bench")
    dev, train = [smooth_image(i) for i in (0, 1)], [smooth_image(i) for i in (20, 21)]
    write_corpus(tmp / "corpus", "natural", {"dev": dev, "train": train})
    model = tiny_model()
    save_model(tmp / "model", model, FixedDepthCNN(FixedCNNConfig(channels=4, depth=2)),
               extra_config={"fixed_steps": 2})
    method_calls, recorders = [], []
    with pytest.MonkeyPatch.context() as mp:
        for name, cls in METHODS.items():
            def spy(self, *args, _orig=cls.restore, _name=name, **kwargs):
                method_calls.append((_name, args, kwargs))
                return _orig(self, *args, **kwargs)
            mp.setattr(cls, "restore", spy)
        real = durr.degrade.get_degradation

        def recording(family):
            recorders.append(RecordingDegradation(real(family)))
            return recorders[-1]

        mp.setattr(durr.degrade, "get_degradation", recording)
        methods = ",".join(n for n in METHODS if n != "bm3d")
        rc = main(["benchmark", "--family", "gaussian", "--corpus", str(tmp / "corpus"), "--model", str(tmp / "model"),
                   "--levels", "20,45", "--methods", methods, "--out", str(tmp / "out"), "--threads", "1", "--quiet"])
    return {"rc": rc, "out": tmp / "out", "dev": dev, "train": train, "calls": method_calls,
            "degradations": [c for r in recorders for c in r.calls]}


def test_end_to_end_writes_table_csv_summary_and_plots(e2e):
    assert e2e["rc"] == 0
    out = e2e["out"]
    for name in ("table.md", "per_image.csv", "summary.json", "psnr_vs_level.png", "steps_vs_level.png",
                 "examples.png"):
        assert (out / name).stat().st_size > 0, name
    table = (out / "table.md").read_text()
    assert "20 (seen)" in table and "45 (**unseen**)" in table and "torch threads: 1" in table
    assert "| DURR, fixed 2 steps |" in table
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 * 2 * 2  # methods (all but BM3D) x images x levels
    assert {r["seen"] for r in rows if r["level"] == "45.0"} == {"False"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith("durr benchmark --family gaussian")
    policy = {m["name"]: m for m in summary["methods"]}["durr-policy"]
    assert policy["available"] and set(policy["per_level"]) == {"20", "45"}


def test_no_method_but_the_oracle_sees_the_clean_image(e2e):
    assert {f.name for f in dataclasses.fields(MethodInput)} == {"degraded", "modality", "spacing_mm"}
    references = [ref for _, _, ref in e2e["degradations"]] + e2e["dev"] + e2e["train"]
    seen_by = set()
    for name, args, kwargs in e2e["calls"]:
        seen_by.add(name)
        (inp,) = args
        assert isinstance(inp, MethodInput)
        assert not any(inp.degraded.shape == ref.shape and np.allclose(inp.degraded, ref) for ref in references)
        if name == "durr-oracle":
            assert set(kwargs) == {"reference"}
        else:
            assert kwargs == {}, f"{name} was given {sorted(kwargs)}"
    assert seen_by == {n for n in METHODS if n != "bm3d"}


def test_tuning_used_only_seen_levels_and_train_images(e2e):
    def is_one_of(image, images):
        return any(image.shape == im.shape and np.array_equal(image, im) for im in images)

    tuning = [(clean, level) for clean, level, _ in e2e["degradations"] if is_one_of(clean, e2e["train"])]
    testing = [(clean, level) for clean, level, _ in e2e["degradations"] if is_one_of(clean, e2e["dev"])]
    assert tuning and testing and len(tuning) + len(testing) == len(e2e["degradations"])
    assert all(5 <= level <= 35 for _, level in tuning)
    assert {level for _, level in testing} == {20.0, 45.0}


def test_reruns_reproduce_the_numbers():
    runs = [_tiny_run(methods=["degraded", "wavelet", "tv", "durr-policy"], model=ModelBundle(model=tiny_model()))
            for _ in range(2)]
    a, b = ([(r["method"], r["level"], r["psnr"], r["steps"]) for r in run.records] for run in runs)
    assert len(a) == 4 * 2 * 2 and a == b


def test_new_families_are_benchmarked_like_the_shipped_ones(tmp_path):
    """``durr benchmark --family mr-undersample``: default seen levels, unseen columns, no model needed."""
    from durr.cli import main

    write_corpus(tmp_path / "corpus", "mr", {"dev": [smooth_image(i) * 300 for i in (0, 1)],
                                              "train": [smooth_image(i) * 300 for i in (20, 21)]})
    rc = main(["benchmark", "--family", "mr-undersample", "--corpus", str(tmp_path / "corpus"),
               "--model", str(tmp_path / "no-model"), "--methods", "degraded,tv,durr-policy",
               "--tuning-images", "1", "--out", str(tmp_path / "out"), "--threads", "1", "--quiet"])
    assert rc == 0
    table = (tmp_path / "out" / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| method"))
    assert "| 2 (seen) | 3 (seen) | 4 (seen) | 6 (**unseen**) | 8 (**unseen**) |" in header
    assert "not available" in table          # no model for this family: the learned rows say so
    tv = next(line for line in table.splitlines() if line.startswith("| TV Chambolle"))
    assert "—" not in tv.split("|")[2]


def test_tuning_sources_choose_the_train_images_that_tune_and_an_unknown_one_is_refused(tmp_path, monkeypatch,
                                                                                         capsys):
    from durr.bench import benchmark as bench
    from durr.cli import main

    write_corpus(tmp_path / "corpus", "natural", {"dev": [smooth_image(0)],
                                                   "train": [smooth_image(i) for i in (20, 21, 22, 23)]})
    passed = []

    def fake_run(family, test, tuning, **kwargs):
        passed.append(tuning)
        raise ValueError("stop here")

    monkeypatch.setattr(bench, "run_benchmark", fake_run)
    common = ["benchmark", "--family", "gaussian", "--corpus", str(tmp_path / "corpus"), "--quiet"]
    assert main(common) == 2
    assert main(common + ["--tuning-sources", "train-src1"]) == 2
    assert {im.source_id for im in passed[0]} == {"train-src0", "train-src1"}
    assert {im.source_id for im in passed[1]} == {"train-src1"} and len(passed[1]) == 2
    assert main(common + ["--tuning-sources", "train-src1,nope"]) == 2
    assert "--tuning-sources: ['nope'] not in the natural train split" in capsys.readouterr().err
    assert len(passed) == 2
