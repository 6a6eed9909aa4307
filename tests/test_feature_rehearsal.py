"""``python -m durr.bench.feature_rehearsal``: feature sets compared by how they carry to heavier levels."""

import pytest
import torch

from durr.bench.feature_rehearsal import main, rehearse
from durr.control.features import FEATURE_NAMES, NUM_FEATURES
from durr.train.reinforce import ReinforceConfig

LAG = FEATURE_NAMES.index("residual_lag1")


def _bank(n: int = 96, horizon: int = 10):
    """Rollouts whose best step grows with the level; residual_lag1 switches on at the best step,
    the other features are noise."""
    g = torch.Generator().manual_seed(0)
    levels = torch.linspace(5.0, 35.0, n, dtype=torch.float64)
    best = (1 + (levels / 5.0).round()).long().clamp(max=horizon)
    steps = torch.arange(horizon + 1)
    psnr = 30.0 - (steps[None, :] - best[:, None]).abs().double()
    features = torch.randn(n, horizon + 1, NUM_FEATURES, generator=g)
    features[..., LAG] = (steps[None, :] >= best[:, None]).float()
    return {"features": features, "psnr": psnr, "levels": levels}


def test_a_feature_that_marks_the_best_step_carries_to_the_heavy_levels():
    bank = _bank()
    cfg = ReinforceConfig(iterations=300, seed=0)
    marked = rehearse(bank["features"], bank["psnr"], bank["levels"], ("moved_over_sigma", "residual_lag1"), cfg)
    blind = rehearse(bank["features"], bank["psnr"], bank["levels"], ("moved_over_sigma",), cfg)
    assert marked["greedy_return"] == pytest.approx(marked["oracle_return"], abs=0.25)
    assert marked["greedy_return"] > blind["greedy_return"] + 1.0
    assert marked["best_steps"] > 6   # the heavy part needs more steps than the light part ever did


def test_the_command_prints_one_row_per_set_and_refuses_unknown_features(tmp_path, capsys):
    torch.save(_bank(), tmp_path / "rollouts.pt")
    args = ["--family", "gaussian", "--rollouts", str(tmp_path / "rollouts.pt"), "--iterations", "50",
            "--sets", "moved_over_sigma,moved_over_sigma+residual_lag1"]
    assert main(args) == 0
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| moved")]
    assert [r.split(" | ")[0] for r in rows] == ["| moved_over_sigma", "| moved_over_sigma, residual_lag1"]
    with pytest.raises(SystemExit):
        main(args[:-1] + ["moved_over_sigma+no_such_feature"])
