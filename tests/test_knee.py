"""The knee guard and the step floor around the stopping policy (``durr.control.knee``,
``durr.control.step_floor``, ``durr.control.stopping``)."""

import math

import pytest
import torch

from durr.control.features import trajectory_features
from durr.control.features import NUM_FEATURES
from durr.control.knee import fit_knee_ratio
from durr.control.step_floor import LOG_SIGMA, fit_step_floor, floor_steps
from durr.control.stopping import UPDATE, policy_stops, stop_steps
from durr.control.policy import PolicyConfig
from durr.infer import load_model, save_model
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, train_stage2

from test_rollout_cache import _sampler

# a heavy-noise run: slow start with growing updates (steps 1-4), a burst (5-6), a slow drift
SLOW_BURST_DRIFT = torch.tensor([[0.0, 0.02, 0.03, 0.04, 0.05, 0.4, 0.6, 0.05, 0.04, 0.03, 0.03]])


def with_update(update, log_sigma=0.0):
    """Features (B, T+1, NUM_FEATURES) holding ``update`` (B, T+1) and a log noise level."""
    features = torch.zeros(*update.shape, NUM_FEATURES)
    features[..., UPDATE] = update
    features[..., LOG_SIGMA] = log_sigma
    return features


def guarded_stops(stop_prob, update, ratio):
    return stop_steps(stop_prob, with_update(update), knee_ratio=ratio)


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
        config = PolicyConfig()

        def stop_probability(self, features):
            return torch.zeros(features.shape[:-1])

    features = with_update(torch.cat([SLOW_BURST_DRIFT, SLOW_BURST_DRIFT]))
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
        expected = stop_steps(model.policy.stop_probability(feats), feats, knee_ratio=0.5)
    assert torch.equal(out.steps, expected) and torch.equal(policy_stops(model.policy, feats), expected)
    alone = model.rollout(y[2:], mode="policy")
    assert int(alone.steps) == int(out.steps[2]) and torch.allclose(alone.output, out.output[2:], atol=1e-6)
    loaded = load_model(save_model(tmp_path / "m", model))
    assert loaded.config.policy.knee_ratio == 0.5
    with pytest.raises(ValueError, match="knee_ratio"):
        PolicyConfig(knee_ratio=1.5)


def test_stage2_fits_the_guard_and_floor_only_when_asked(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    model = tiny_durr("OT", "gaussian", max_steps=4)
    model.config.policy.knee_ratio = 0.3            # a stale ratio from an earlier policy
    model.config.policy.step_floor = (1.0, 0.5)
    result = train_stage2(model, _sampler(), cfg, progress=False)
    assert result["knee_guard"] == {} and result["step_floor"] == {}
    assert model.config.policy.knee_ratio is None and model.config.policy.step_floor is None
    cfg.step_floor = True
    floor = train_stage2(model, _sampler(), cfg, progress=False)["step_floor"]
    assert len(floor["law"]) == 2 and floor["kept"] == (model.config.policy.step_floor is not None)
    assert floor["kept"] == (floor["bank_psnr_floored"] > floor["bank_psnr_policy_alone"])
    cfg.knee_guard = True
    result = train_stage2(model, _sampler(), cfg, progress=False)
    assert model.config.policy.knee_ratio == result["knee_guard"]["knee_ratio"]
    scores = result["knee_guard"]["bank_psnr_by_ratio"]
    assert "policy alone" in scores
    if model.config.policy.knee_ratio is not None:
        assert scores[f"{model.config.policy.knee_ratio:g}"] > scores["policy alone"]


def test_step_floor_law_is_fitted_on_best_steps_and_holds_the_policy_back():
    log_sigma = torch.tensor([-4.0, -3.0, -2.0, -1.0])
    best = torch.tensor([1, 2, 4, 8])                                   # doubles per unit of log sigma
    psnr = -(torch.arange(11.0)[None, :] - best[:, None].float()).abs()
    features = with_update(torch.zeros(4, 11))
    features[..., LOG_SIGMA] = log_sigma[:, None]
    a, b = fit_step_floor(features, psnr)
    assert a == pytest.approx(4 * math.log(2), abs=1e-6) and b == pytest.approx(math.log(2), abs=1e-6)
    floors = floor_steps(log_sigma, (a, b))
    assert ((best - floors) <= 1).all() and (floors <= best).all()
    eager = torch.ones(4, 11)                                           # the policy would stop at 0
    assert torch.equal(stop_steps(eager, features, step_floor=(a, b)), floors.clamp(max=10))
    assert torch.equal(stop_steps(eager, features), torch.zeros(4, dtype=torch.long))
    # beyond the fitted levels the power law keeps growing
    assert int(floor_steps(torch.tensor([0.0]), (a, b))) >= 15 > int(floors.max())


def test_rollout_respects_the_step_floor_with_and_without_the_knee_guard(tiny_durr, one_thread):
    y = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    for knee in (None, 0.5):
        model = tiny_durr("OT", "gaussian", max_steps=12)
        with torch.no_grad():  # a policy that always says stop
            model.policy.net[-1].bias.fill_(10.0)
        model.config.policy.knee_ratio = knee
        assert (model.rollout(y, mode="policy").steps <= 1).all()     # (the guard vetoes step 0)
        model.config.policy.step_floor = (float(torch.log(torch.tensor(6.5)) + 3.0), 1.0)  # 6.5 * sigma_y / e^-3
        out = model.rollout(y, mode="policy")
        with torch.no_grad():
            feats = trajectory_features(model.unroll(y, 12), y)
        assert torch.equal(out.steps, policy_stops(model.policy, feats))
        assert torch.equal(out.steps, floor_steps(feats[:, 0, LOG_SIGMA], model.config.policy.step_floor).clamp(max=12))


def test_an_input_without_measurable_noise_is_left_as_it_is(tiny_durr, one_thread):
    smooth = torch.linspace(0, 1, 24).repeat(24, 1)[None, None]      # Haar-MAD noise level 0
    noisy = smooth + 0.05 * torch.randn(smooth.shape, generator=torch.Generator().manual_seed(2))
    y = torch.cat([smooth, noisy])
    for knee, floor in ((None, None), (0.5, None), (None, (10.0, 1.0))):
        model = tiny_durr("OT", "gaussian", max_steps=12)
        with torch.no_grad():  # a policy that never says stop
            model.policy.net[-1].bias.fill_(-10.0)
        model.config.policy.knee_ratio, model.config.policy.step_floor = knee, floor
        out = model.rollout(y, mode="policy")
        assert int(out.steps[0]) == 0 and torch.equal(out.output[0], y[0])
        assert int(out.steps[1]) > 0
        with torch.no_grad():
            feats = trajectory_features(model.unroll(y, 12), y)
        assert torch.equal(policy_stops(model.policy, feats), out.steps)
        assert int(model.rollout(y[:1], mode="fixed", steps=3).steps) == 3   # an explicit count still runs
