"""The discrepancy cap around the stopping policy (``durr.control.moved_cap``)."""

import pytest
import torch

from durr.control.features import NUM_FEATURES, trajectory_features
from durr.control.moved_cap import fit_moved_cap
from durr.control.policy import PolicyConfig
from durr.control.stopping import MOVED, policy_stops, stop_steps
from durr.infer import load_model, save_model
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, train_stage2

from test_rollout_cache import _sampler


def _moving(moved: list[list[float]]) -> torch.Tensor:
    features = torch.zeros(len(moved), len(moved[0]), NUM_FEATURES)
    features[..., MOVED] = torch.tensor(moved)
    return features


def test_the_cap_stops_where_the_estimate_has_moved_too_far_even_under_the_floor():
    features = _moving([[0.0, 0.8, 1.6, 2.4, 3.2, 4.0], [0.0, 0.5, 0.9, 1.2, 1.4, 1.5]])
    never = torch.zeros(2, 6)
    assert stop_steps(never, features).tolist() == [5, 5]
    assert stop_steps(never, features, moved_cap=2.0).tolist() == [3, 5]
    assert stop_steps(never, features, step_floor=(10.0, 0.0), moved_cap=2.0).tolist() == [3, 5]
    eager = torch.zeros(2, 6)
    eager[:, 1] = 1.0
    assert stop_steps(eager, features, moved_cap=2.0).tolist() == [1, 1]   # the policy still stops first


def test_the_cap_sits_a_margin_above_the_farthest_best_step_and_must_be_free_on_the_bank(tiny_durr):
    features = _moving([[0.0, 1.0, 1.8, 2.6, 3.4], [0.0, 0.6, 1.2, 1.7, 2.3]])
    psnr = torch.tensor([[20.0, 25.0, 27.0, 26.0, 25.0], [20.0, 22.0, 24.0, 25.0, 28.0]])
    policy = tiny_durr("OT", "gaussian").policy
    with torch.no_grad():
        policy.net[-1].bias.fill_(-10.0)              # never stops: the cap alone decides
        policy.net[-1].weight.zero_()
    # best steps: 2 (moved 1.8) and 4 (moved 2.3): cap 1.5 x 2.3 = 3.45 stops the first at 4, as without
    cap, scores = fit_moved_cap(policy, features, psnr)
    assert cap == pytest.approx(3.45) and scores["largest at best step"] == pytest.approx(2.3)
    assert scores["capped"] == pytest.approx(26.5) == scores["no cap"]
    # a margin under 1 cuts the second run short of its best step (cap 1.61: steps 2 and 3 -> 27, 25)
    cap, scores = fit_moved_cap(policy, features, psnr, margin=0.7)
    assert cap is None and scores["capped"] < scores["no cap"]


def test_rollouts_apply_the_cap_as_the_bank_rule_does(tiny_durr, one_thread, tmp_path):
    y = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    for knee in (None, 0.5):
        model = tiny_durr("OT", "gaussian", max_steps=12)
        with torch.no_grad():  # a policy that never says stop
            model.policy.net[-1].bias.fill_(-10.0)
            feats = trajectory_features(model.unroll(y, 12), y)
        model.config.policy.knee_ratio = knee
        model.config.policy.moved_cap = float(feats[:, 4, MOVED].median())   # binds on some images
        out = model.rollout(y, mode="policy")
        assert torch.equal(out.steps, policy_stops(model.policy, feats))
        assert (out.steps < 12).any()
        alone = model.rollout(y[1:2], mode="policy")
        assert int(alone.steps) == int(out.steps[1])
    loaded = load_model(save_model(tmp_path / "m", model))
    assert loaded.config.policy.moved_cap == model.config.policy.moved_cap
    with pytest.raises(ValueError, match="moved_cap"):
        PolicyConfig(moved_cap=0.0)


def test_stage2_fits_the_cap_only_when_asked(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    model = tiny_durr("OT", "gaussian", max_steps=4)
    model.config.policy.moved_cap = 2.5             # stale, from an earlier policy
    assert train_stage2(model, _sampler(), cfg, progress=False)["moved_cap"] == {}
    assert model.config.policy.moved_cap is None
    cfg.moved_cap = True
    result = train_stage2(model, _sampler(), cfg, progress=False)["moved_cap"]
    assert model.config.policy.moved_cap == result["moved_cap"]
    assert "no cap" in result["bank_psnr_by_cap"]
