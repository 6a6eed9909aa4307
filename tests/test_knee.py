"""The knee guard around the stopping policy (``durr.control.knee``)."""

import pytest
import torch

from durr.control.features import trajectory_features
from durr.control.knee import UPDATE, fit_knee_ratio, guarded_stops
from durr.control.policy import PolicyConfig
from durr.infer import load_model, save_model
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, train_stage2

from test_rollout_cache import _sampler

# a heavy-noise run: slow start with growing updates (steps 1-4), a burst (5-6), a slow drift
SLOW_BURST_DRIFT = torch.tensor([[0.0, 0.02, 0.03, 0.04, 0.05, 0.4, 0.6, 0.05, 0.04, 0.03, 0.03]])


def test_stops_at_the_end_of_the_burst_and_vetoes_a_stop_while_updates_grow():
    never = torch.zeros(1, 11)
    assert int(guarded_stops(never, SLOW_BURST_DRIFT, 0.2)) == 6        # u_7 = 0.05 < 0.2 * 0.6
    eager = torch.ones(1, 11)                                            # the policy says stop everywhere
    # vetoed at steps 0-5, where the next update is a new largest one; the knee stops at 6 anyway
    assert int(guarded_stops(eager, SLOW_BURST_DRIFT, 0.2)) == 6
    fading = torch.tensor([[0.0, 0.5, 0.4, 0.3, 0.2, 0.12, 0.05, 0.04, 0.03, 0.02, 0.01]])
    # a light-noise run: the first update is the largest; the policy's stop at 2 stands
    assert int(guarded_stops(torch.tensor([[0.0, 0.0, 0.9] + [0.0] * 8]), fading, 0.2)) == 2
    assert int(guarded_stops(never, fading, 0.2)) == 5                  # u_6 = 0.05 < 0.2 * 0.5 <= u_5
    assert int(guarded_stops(never, torch.full((1, 11), 0.3), 0.2)) == 10  # nothing: the last step


def test_fit_knee_ratio_picks_the_ratio_with_the_best_bank_psnr():
    class Never(torch.nn.Module):
        def stop_probability(self, features):
            return torch.zeros(features.shape[:-1])

    features = torch.zeros(2, 11, 6)
    features[..., UPDATE] = torch.cat([SLOW_BURST_DRIFT, SLOW_BURST_DRIFT])
    psnr = torch.arange(11.0).repeat(2, 1)
    psnr[:, 7:] = 0.0                                                    # best at step 6
    ratio, scores = fit_knee_ratio(Never(), features, psnr, grid=(0.05, 0.2, 0.5))
    assert ratio == 0.2 and scores["0.2"] == 6.0 and scores["0.05"] < 6.0 and scores["policy alone"] == 0.0

    class Perfect(Never):                                                # stops at the best step itself
        def stop_probability(self, features):
            return (torch.arange(11) >= 6).float().expand(features.shape[:-1])

    ratio, scores = fit_knee_ratio(Perfect(), features, psnr, grid=(0.05, 0.2, 0.5))
    assert ratio is None and scores["policy alone"] == 6.0              # no guard beats it: left off


def test_rollout_takes_the_same_stops_as_the_bank_rule_and_is_batch_independent(tiny_durr, one_thread, tmp_path):
    model = tiny_durr("OT", "gaussian", max_steps=12)
    model.config.policy.knee_ratio = 0.5
    y = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    out = model.rollout(y, mode="policy")
    with torch.no_grad():
        feats = trajectory_features(model.unroll(y, 12), y)
        expected = guarded_stops(model.policy.stop_probability(feats), feats[..., UPDATE], 0.5)
    assert torch.equal(out.steps, expected)
    alone = model.rollout(y[2:], mode="policy")
    assert int(alone.steps) == int(out.steps[2]) and torch.allclose(alone.output, out.output[2:], atol=1e-6)
    loaded = load_model(save_model(tmp_path / "m", model))
    assert loaded.config.policy.knee_ratio == 0.5
    with pytest.raises(ValueError, match="knee_ratio"):
        PolicyConfig(knee_ratio=1.5)


def test_stage2_fits_the_guard_only_when_asked(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    model = tiny_durr("OT", "gaussian", max_steps=4)
    model.config.policy.knee_ratio = 0.3            # a stale ratio from an earlier policy
    assert train_stage2(model, _sampler(), cfg, progress=False)["knee_guard"] == {}
    assert model.config.policy.knee_ratio is None
    cfg.knee_guard = True
    result = train_stage2(model, _sampler(), cfg, progress=False)
    assert model.config.policy.knee_ratio == result["knee_guard"]["knee_ratio"]
    scores = result["knee_guard"]["bank_psnr_by_ratio"]
    assert "policy alone" in scores
    if model.config.policy.knee_ratio is not None:
        assert scores[f"{model.config.policy.knee_ratio:g}"] > scores["policy alone"]
