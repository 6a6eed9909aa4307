"""Training recipe configuration, the level -> steps schedule, and the bank sampler."""

import numpy as np
import pytest
import torch

from durr.data.sampling import PairSampler, sample_seen_levels, severity
from durr.degrade import get_degradation
from durr.train.pipeline import RecipeConfig
from durr.train.schedule import StepSchedule


def test_yaml_style_overrides_reach_nested_fields():
    cfg = RecipeConfig.for_family("ct-lowdose", {"stage1": {"iterations": 7, "n_max": 9},
                                                 "model": {"unit": {"channels": 8}},
                                                 "degradation_options": {"circle": True}})
    assert cfg.stage1.iterations == 7 and cfg.stage1.n_max == 9
    assert cfg.model.unit.channels == 8 and cfg.model.modality == "CT"
    assert cfg.degradation_options == {"circle": True} and cfg.bank_per_slice == 3


@pytest.mark.parametrize("overrides, message", [({"stage1": {"iters": 1}}, "stage1.iters"),
                                                ({"nonsense": {}}, "nonsense")])
def test_unknown_config_keys_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        RecipeConfig.for_family("mr-rician", overrides)


@pytest.mark.parametrize("family", ["ct-lowdose", "mr-rician", "gaussian"])
def test_schedule_gives_heavier_levels_more_steps(family):
    deg = get_degradation(family)
    levels = torch.tensor(sorted(deg.seen) + list(deg.unseen), dtype=torch.float64)
    steps = StepSchedule(family, deg.seen).steps(levels)
    order = severity(family, levels).argsort()
    assert torch.all(steps[order].diff() >= 0)
    assert steps[order][0] == 2 and steps[order][-1] > 7  # extrapolates beyond the seen range


def test_seen_level_sampling_stays_in_the_seen_range():
    for family in ("ct-lowdose", "mr-rician"):
        deg = get_degradation(family)
        lv = sample_seen_levels(family, deg.seen, 500, torch.Generator().manual_seed(0))
        assert lv.min() >= min(deg.seen) - 1e-9 and lv.max() <= max(deg.seen) + 1e-9


def test_bank_sampler_crops_pairs_in_the_working_domain():
    rng = np.random.default_rng(0)
    clean = [torch.from_numpy(rng.random((40, 40)).astype(np.float32) * 100) for _ in range(3)]
    noisy = [c + 1.0 for c in clean]
    sampler = PairSampler([], get_degradation("mr-rician"), "MR", patch=16,
                          bank=(noisy, clean, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
    pairs = sampler.sample(5, torch.Generator().manual_seed(0))
    assert pairs.degraded.shape == (5, 1, 16, 16) and pairs.level.shape == (5,)
    assert pairs.degraded.max() <= 1.2  # divided by the degraded slice's 99.5th percentile
    assert torch.all(pairs.degraded > pairs.clean)
