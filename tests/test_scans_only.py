"""Stage 2 on scans only: the stand-in natural images of a medical group leave the policy's bank."""

import pytest
import torch

from durr.data.sources import SOURCES, STAND_IN_NOTES, is_stand_in
from durr.degrade import get_degradation
from durr.train.pipeline import keep_scans
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
    deg, (kept, ref, lv) = keep_scans((get_degradation("mr-rician"), (degraded, reference, levels)), ids, per_slice)
    assert [float(t[0, 0]) for t in kept] == [0, 1, 2, 6, 7, 8]
    assert [float(t[0, 0]) for t in ref] == [0.5, 1.5, 2.5, 6.5, 7.5, 8.5]
    assert lv.tolist() == [0, 1, 2, 6, 7, 8]
    with pytest.raises(ValueError, match="another corpus"):
        keep_scans((deg, (degraded[:-1], reference[:-1], levels[:-1])), ids, per_slice)


def test_a_scans_only_rollout_cache_has_its_own_file():
    names = {rollout_cache_name(Stage2Config(whole_slices=w, scans_only=s)) for w in (False, True) for s in (False, True)}
    assert len(names) == 4 and "rollouts.pt" in names
