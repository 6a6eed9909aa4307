"""Training on a user's own folder: reading and splitting it, skipping broken files, the model folder."""

import json
from pathlib import Path
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

from durr.data.user_folder import SkippedScanWarning, read_user_folder, split_volumes
from durr.degrade import get_degradation
from durr.infer.model_io import load_model, save_model
from durr.train.stage1 import Stage1Config
from durr.train.stage2 import Stage2Config
from durr.train.reinforce import ReinforceConfig
from durr.train.user_training import (HeldoutShortfallWarning, UserTrainingConfig, evaluation_levels,
                                      train_on_user_data)


def _smooth_volume(rng: np.random.Generator, size: int = 48, depth: int = 3) -> np.ndarray:
    """A positive MR-like volume (X, Y, Z): blobs on a dark background."""
    yy, xx = np.mgrid[:size, :size] / size
    vol = np.zeros((size, size, depth), np.float32)
    for z in range(depth):
        for _ in range(4):
            cy, cx, r = rng.uniform(0.25, 0.75, 2).tolist() + [rng.uniform(0.08, 0.2)]
            vol[..., z] += 400 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return vol


@pytest.fixture
def user_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        nib.save(nib.Nifti1Image(_smooth_volume(rng), np.eye(4)), folder / ("sub" if i % 2 else "") / f"vol{i}.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a gzip stream")
    (folder / "notes.txt").write_text("not a scan")
    return folder


def test_folder_is_split_by_volume_and_broken_files_are_skipped_with_a_warning(user_folder):
    with pytest.warns(SkippedScanWarning) as caught:
        data = read_user_folder(user_folder, "MR", heldout_fraction=0.25, seed=0)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.nii.gz" in messages and "notes.txt" in messages
    train_ids, held_ids = set(data.train.source_ids), set(data.heldout.source_ids)
    assert len(train_ids) == 3 and len(held_ids) == 1 and not train_ids & held_ids
    assert len(data.train.images) == 9 and all(im.shape == (48, 48) for im in data.train.images)
    assert {s["scan"] for s in data.summary()["skipped"]} == {"broken.nii.gz", "notes.txt"}


def test_split_needs_two_scans_and_is_seeded():
    with pytest.raises(ValueError, match="at least 2 readable scans"):
        split_volumes(["a"], 0.2, 0)
    names = [f"v{i}" for i in range(10)]
    assert split_volumes(names, 0.2, 1) == split_volumes(names, 0.2, 1)
    assert len(split_volumes(names, 0.2, 1)[1]) == 2


def test_evaluation_levels_cover_seen_then_unseen():
    deg = get_degradation("ct-sparseview")
    levels = evaluation_levels(deg, 3, None)
    assert levels[:3] == [360.0, 180.0, 120.0]          # severities 2, 4, 6 (720 / n), on the grid
    assert levels[-2:] == [90.0, 60.0]


def test_policy_training_on_a_user_folder_writes_a_complete_model(user_folder, tmp_path, tiny_durr, one_thread):
    base = tmp_path / "base"
    save_model(base, tiny_durr("MR", "mr-rician", max_steps=6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedScanWarning)
        data = read_user_folder(user_folder, "MR", heldout_fraction=0.25, seed=0)
    cfg = UserTrainingConfig(what="policy", bank_per_slice=2,
                             stage2=Stage2Config(episodes=16, horizon=5, chunk=8, whole_slices=True, select_features=True,
                                                 reinforce=ReinforceConfig(iterations=40, batch=8)))
    deg = get_degradation("mr-undersample")
    out = tmp_path / "adapted"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HeldoutShortfallWarning)
        summary = train_on_user_data(base, deg, data, out, tmp_path / "work", cfg, progress=False,
                                     command="durr train policy ...")
    model = load_model(out)
    assert model.config.family == "mr-undersample"
    # every held-out level where the new policy trails another rule is warned about and carded
    behind = summary["user_training"]["shortfalls"]
    assert len([w for w in caught if w.category is HeldoutShortfallWarning]) == len(behind)
    card = (out / "MODEL_CARD.md").read_text()
    assert ("**Warning.**" in card) == bool(behind)
    assert all(f"level {b['level']:g} (" in card for b in behind)
    restored = model.restore(torch.from_numpy(data.heldout.images[0])[None, None])   # loads and runs like a shipped model
    assert restored.output.shape == (1, 1, 48, 48) and torch.isfinite(restored.output).all()
    # the restorer is the base model's, untouched; the policy was retrained
    base_model = load_model(base)
    for k, v in base_model.unit.state_dict().items():
        assert torch.equal(v, model.unit.state_dict()[k])
    assert any(not torch.equal(v, model.policy.state_dict()[k]) for k, v in base_model.policy.state_dict().items())
    config = json.loads((out / "config.json").read_text())
    rows = config["user_training"]["heldout"]
    levels = {r["level"] for r in rows}
    assert {6.0, 8.0} <= levels and len(levels) == 5          # 3 seen + 2 unseen
    methods = {r["method"] for r in rows}
    assert {"base model's policy", "new policy", "oracle stop", "degraded input"} <= methods
    for lv in levels:   # the oracle is an upper bound of every stopping rule on the same trajectory
        at = {r["method"]: r["psnr"] for r in rows if r["level"] == lv}
        assert at["oracle stop"] >= max(v for k, v in at.items() if k not in ("oracle stop", "base model's policy")) - 1e-9
    card = (out / "MODEL_CARD.md").read_text()
    assert "broken.nii.gz" in card and "held out: 3 slices of 1 scans" in card and "6 (unseen)" in card
    assert summary["user_training"]["data"]["train"]["slices"] == 9
    chosen = summary["user_training"]["feature_selection"]
    assert len(chosen) == 3 and list(model.config.policy.features) == max(chosen, key=lambda c: c["rehearsal_return"])["features"]
    assert "by a rehearsal" in card


def test_cli_refuses_a_modality_mismatch_and_a_folder_without_two_scans(user_folder, tmp_path, tiny_durr, capsys):
    from durr.cli import main

    base = tmp_path / "base"
    save_model(base, tiny_durr("MR", "mr-rician"))
    with pytest.raises(SystemExit, match="ct-sparseview: degrades CT images, not MR"):
        main(["train", "policy", "--base", str(base), "--degradation", "ct-sparseview", "--data", str(user_folder),
              "--out", str(tmp_path / "o")])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    nib.save(nib.Nifti1Image(_smooth_volume(np.random.default_rng(1)), np.eye(4)), lonely / "only.nii.gz")
    with pytest.raises(SystemExit, match="at least 2 readable scans"):
        main(["train", "policy", "--base", str(base), "--degradation", "mr-undersample", "--data", str(lonely),
              "--out", str(tmp_path / "o")])


def test_rehearsal_holds_out_the_heaviest_third_of_the_seen_range():
    from durr.train.feature_selection import rehearsal_split

    light, heavy = rehearsal_split(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert light.tolist() == [True, True, False, False] and heavy.tolist() == [False, False, True, True]


def test_feature_selection_prefers_the_features_that_explain_the_stop(one_thread):
    """The best stop is set by the input's noise level: only candidates that see it can extrapolate."""
    from durr.control.features import FEATURE_NAMES
    from durr.control.policy import PolicyConfig
    from durr.train.feature_selection import select_features

    g = torch.Generator().manual_seed(0)
    n, horizon = 256, 12
    severity = torch.rand(n, generator=g) * 3 + 1                        # seen levels 1..4
    best = (2 * severity).round()                                        # best stop grows with the level
    steps = torch.arange(horizon + 1, dtype=torch.float64)
    psnr = -(steps[None] - best[:, None].double()).abs()                 # peaked at the best step
    features = torch.randn(n, horizon + 1, len(FEATURE_NAMES), generator=g) * 0.1
    features[..., FEATURE_NAMES.index("log_sigma_input")] = severity[:, None]
    features[..., FEATURE_NAMES.index("step_over_ten")] = steps[None].float() / 10
    candidates = (("moved_over_sigma",), ("log_sigma_input", "step_over_ten"))
    names, scores = select_features(features, psnr, severity, PolicyConfig(), ReinforceConfig(iterations=600),
                                    candidates=candidates)
    assert names == ("log_sigma_input", "step_over_ten"), scores


def test_cli_trains_on_a_user_callable_with_a_config(user_folder, tmp_path, tiny_durr, monkeypatch, one_thread):
    from durr.cli import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    base = tmp_path / "base"
    save_model(base, tiny_durr("MR", "mr-rician", max_steps=4))
    config = tmp_path / "small.yaml"
    config.write_text("bank_per_slice: 1\nstage2: {episodes: 8, horizon: 3, moved_cap: true, "
                      "reinforce: {iterations: 20, batch: 8}}\n")
    out = tmp_path / "speckle-model"
    with pytest.warns(SkippedScanWarning):
        code = main(["train", "policy", "--base", str(base), "--degradation", "user_degradations:speckle",
                     "--levels", "0.05:0.2", "--unseen", "0.3", "--data", str(user_folder), "--out", str(out),
                     "--config", str(config), "--work-dir", str(tmp_path / "work")])
    assert code == 0
    summary = json.loads((out / "config.json").read_text())["user_training"]
    assert summary["degradation"] == "user_degradations:speckle" and summary["seen"] == [0.05, 0.2]
    assert {r["level"] for r in summary["heldout"]} == {0.05, 0.125, 0.2, 0.3}
    assert "durr train policy --base" in (out / "MODEL_CARD.md").read_text()
    cap = summary["moved_cap"]                  # the cap was fitted; the model holds it if it was free
    assert set(cap) == {"moved_cap", "bank_psnr_by_cap"}
    assert load_model(out).config.policy.moved_cap == cap["moved_cap"]


def test_shortfalls_name_the_worst_rule_beating_the_new_policy_per_level():
    from durr.train.heldout import shortfalls

    rows = [{"level": lv, "method": m, "psnr": p, "steps": 1.0, "n": 1} for lv, m, p in [
        (2.0, "base model's policy", 30.0), (2.0, "new policy", 30.05), (2.0, "best fixed steps (5)", 30.1),
        (2.0, "oracle stop", 35.0), (2.0, "degraded input", 31.0),
        (6.0, "base model's policy", 22.5), (6.0, "new policy", 22.0), (6.0, "best fixed steps (5)", 22.3),
        (6.0, "oracle stop", 23.0)]]
    assert shortfalls(rows) == [{"level": 6.0, "method": "base model's policy", "deficit_db": 0.5}]
    assert shortfalls(rows, tolerance_db=0.6) == []


def test_corpus_source_choices_are_refused_for_a_user_folder(user_folder, tmp_path, tiny_durr):
    base = tmp_path / "base"
    save_model(base, tiny_durr("MR", "mr-rician"))
    data = read_user_folder(user_folder, "MR")
    cfg = UserTrainingConfig(stage2=Stage2Config(balance_sources=True, sources=["mni152"]))
    with pytest.raises(ValueError, match="stage2.sources, stage2.balance_sources: these choose among the corpus"):
        train_on_user_data(base, get_degradation("mr-rician"), data, tmp_path / "o", tmp_path / "w", cfg,
                           progress=False)
    cfg = UserTrainingConfig(stage1=Stage1Config(balance_sources=True))
    with pytest.raises(ValueError, match="^stage1.balance_sources: these choose among the corpus"):
        train_on_user_data(base, get_degradation("mr-rician"), data, tmp_path / "o", tmp_path / "w", cfg,
                           progress=False)
