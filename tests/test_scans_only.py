"""Stage 2 on scans only: the stand-in natural images of a medical group leave the policy's bank."""

import pytest
import torch

from durr.data.sources import SOURCES, STAND_IN_NOTES, is_stand_in
from durr.degrade import get_degradation
from durr.train.pipeline import check_sources, keep_slices, source_filter
from durr.train.stage2 import Stage2Config, rollout_cache_name


def test_stand_ins_are_the_textures_and_photographs_of_the_medical_groups():
    stand_ins = {s.source_id for s in SOURCES if is_stand_in(s.source_id)}
    assert {"texture-grass", "photo-camera"} <= stand_ins
    assert all(s.note in STAND_IN_NOTES for s in SOURCES if s.source_id in stand_ins)
    assert not any(is_stand_in(sid) for sid in ("mni152", "ct-phantoms-train", "skimage-grass", "a-user-volume"))


def test_keep_scans_drops_every_realisation_of_a_stand_in_and_keeps_the_order():
    per_slice, ids = 3, ["mni152", "texture-grass", "mr2-uncr", "photo-moon"]
    n = per_slice * len(ids)
    degraded = [torch.full((4, 4), float(i)) for i in range(n)]
    reference = [t + 0.5 for t in degraded]
    levels = torch.arange(n, dtype=torch.float64)
    bank = (get_degradation("mr-rician"), (degraded, reference, levels))
    deg, (kept, ref, lv) = keep_slices(bank, ids, per_slice, source_filter(None, scans_only=True))
    assert [float(t[0, 0]) for t in kept] == [0, 1, 2, 6, 7, 8]
    assert [float(t[0, 0]) for t in ref] == [0.5, 1.5, 2.5, 6.5, 7.5, 8.5]
    assert lv.tolist() == [0, 1, 2, 6, 7, 8]
    with pytest.raises(ValueError, match="another corpus"):
        keep_slices((deg, (degraded[:-1], reference[:-1], levels[:-1])), ids, per_slice, source_filter(None, True))


def test_chosen_sources_keep_only_their_realisations_and_an_empty_choice_is_an_error():
    per_slice, ids = 2, ["ct-phantoms-train", "ct-phantoms-train", "ct-small", "ct-head-cq500"]
    n = per_slice * len(ids)
    degraded = [torch.full((4, 4), float(i)) for i in range(n)]
    bank = (get_degradation("mr-rician"), (degraded, degraded, torch.arange(n, dtype=torch.float64)))
    _, (kept, _, lv) = keep_slices(bank, ids, per_slice, source_filter(["ct-small", "ct-head-cq500"]))
    assert lv.tolist() == [4, 5, 6, 7]
    _, (kept, _, lv) = keep_slices(bank, ids, per_slice, source_filter(["ct-phantoms-train"]))
    assert lv.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="no training slice"):
        keep_slices(bank, ids, per_slice, source_filter(["texture-grass"]))


def test_a_source_the_split_lacks_is_named_in_the_error():
    check_sources(None, ["ct-small"], "stage2")
    check_sources(["ct-small"], ["ct-small", "ct-phantoms-train"], "stage2")
    with pytest.raises(ValueError, match=r"stage1.sources names \['ct-typo'\]"):
        check_sources(["ct-small", "ct-typo"], ["ct-small"], "stage1")


def test_a_scans_only_or_source_restricted_rollout_cache_has_its_own_file():
    names = {rollout_cache_name(Stage2Config(whole_slices=w, scans_only=s)) for w in (False, True) for s in (False, True)}
    assert len(names) == 4 and "rollouts.pt" in names
    a = rollout_cache_name(Stage2Config(sources=["ct-small", "ct-head-j2k"]))
    assert a == rollout_cache_name(Stage2Config(sources=["ct-head-j2k", "ct-small"])) and a not in names
    assert a != rollout_cache_name(Stage2Config(sources=["ct-small"]))


def test_balanced_sources_are_drawn_equally_often():
    from durr.data.sampling import PairSampler
    from durr.train.pipeline import balanced_weights, sampler_from_bank

    ids = ["ct-phantoms-train"] * 8 + ["ct-small", "ct-head-cq500"]
    assert balanced_weights(ids).tolist() == [0.125] * 8 + [1.0, 1.0]
    degraded = [torch.rand(16, 16) for _ in ids]
    levels = torch.arange(len(ids), dtype=torch.float64)  # the level tells which slice was drawn
    bank = (get_degradation("gaussian"), (degraded, degraded, levels))
    drawn = sampler_from_bank(bank, 8, ids).sample(3000, torch.Generator().manual_seed(0)).level
    assert abs(float((drawn < 8).double().mean()) - 1 / 3) < 0.04
    assert abs(float((drawn == 9).double().mean()) - 1 / 3) < 0.04
    uniform = sampler_from_bank(bank, 8).sample(3000, torch.Generator().manual_seed(0)).level
    assert abs(float((uniform < 8).double().mean()) - 0.8) < 0.04
    with pytest.raises(ValueError, match="one weight per bank slice"):
        PairSampler([], bank[0], "OT", patch=8, bank=bank[1], bank_weights=torch.ones(3))


def test_a_balanced_whole_slice_bank_is_redrawn_with_the_weights_of_the_slices_it_rolled_out():
    from types import SimpleNamespace

    from durr.train.stage2 import resample_whole_slice_bank, whole_slice_choice

    cfg = Stage2Config(whole_slices=True, balance_sources=True, episodes=400)
    weights = torch.tensor([1.0] * 9 + [9.0], dtype=torch.float64)   # slice 9 weighs as much as the rest
    sampler = SimpleNamespace(bank=([None] * 10,), bank_weights=weights)
    chosen = whole_slice_choice(10, cfg.episodes, torch.Generator().manual_seed(cfg.reinforce.seed))
    assert sorted(chosen) == list(range(10))
    bank = (torch.tensor(chosen, dtype=torch.float64)[:, None], torch.zeros(10, 3), torch.tensor(chosen))
    features, psnr, levels = resample_whole_slice_bank(bank, sampler, cfg)
    assert features.shape == (10, 1) and psnr.shape == (10, 3)
    assert torch.equal(features[:, 0].long(), levels)   # rows stay together
    n = 1000
    cfg = Stage2Config(whole_slices=True, balance_sources=True, episodes=n)
    order = torch.tensor(whole_slice_choice(n, n, torch.Generator().manual_seed(cfg.reinforce.seed)))
    big = (order[:, None].double(), torch.zeros(n, 3), order % 10)           # rows in rollout order
    sampler = SimpleNamespace(bank=([None] * n,), bank_weights=weights.repeat(n // 10))  # slice k: weight of k % 10
    _, _, drawn = resample_whole_slice_bank(big, sampler, cfg)
    assert abs(float((drawn == 9).double().mean()) - 0.5) < 0.06


def test_each_stage_takes_its_sources_from_the_recipe_bank(tmp_path):
    import json

    import numpy as np

    from durr.train.pipeline import RecipeConfig, load_bank, make_sampler, policy_sampler, stage_bank

    folder = tmp_path / "natural"
    folder.mkdir()
    rng = np.random.default_rng(0)
    ids = ["src-a", "src-a", "src-b"]
    np.savez(folder / "train.npz", **{f"slice_{i:05d}": rng.random((40, 40), dtype=np.float32) for i in range(3)})
    (folder / "train.json").write_text(json.dumps([{"source_id": s, "spacing_mm": 1.0, "shape": [40, 40]}
                                                   for s in ids]))
    cfg = RecipeConfig.for_family("gaussian", {"bank_per_slice": 2, "stage1": {"sources": ["src-a"]},
                                               "stage2": {"balance_sources": True, "patch": 32}})
    bank = load_bank(cfg, tmp_path, progress=False)
    restorer_bank, restorer_ids = stage_bank(bank, tmp_path, cfg, "stage1")
    assert len(restorer_bank[1][0]) == 4 and restorer_ids == ["src-a"] * 4
    assert torch.equal(restorer_bank[1][2], bank[1][2][:4])
    assert make_sampler(cfg, 32, tmp_path, bank=bank).bank_weights is None
    cfg.stage1.sources, cfg.stage1.balance_sources = None, True
    assert make_sampler(cfg, 32, tmp_path, bank=bank).bank_weights.tolist() == [0.25] * 4 + [0.5] * 2
    cfg.stage1.sources, cfg.stage1.balance_sources = ["src-a"], False
    weights = policy_sampler(cfg, tmp_path, bank=bank).bank_weights
    assert weights.tolist() == [0.25] * 4 + [0.5] * 2          # src-a and src-b weigh the same
    cfg.stage1.sources = ["src-c"]
    with pytest.raises(ValueError, match=r"stage1.sources names \['src-c'\]"):
        make_sampler(cfg, 32, tmp_path, bank=bank)
    from durr.train.checkpoint import save_checkpoint

    work = tmp_path / "work"
    work.mkdir()
    stale = [torch.zeros(40, 40)] * 2
    save_checkpoint(work / "bank_2_0.pt", {"degraded": stale, "reference": stale, "levels": torch.ones(2)})
    with pytest.raises(ValueError, match="built from another corpus; delete it"):
        load_bank(cfg, tmp_path, work, progress=False)
