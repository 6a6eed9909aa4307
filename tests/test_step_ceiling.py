"""The step ceiling over the stopping policy (``durr.control.step_ceiling``)."""

import math

import pytest
import torch

from durr.control.features import NUM_FEATURES, trajectory_features
from durr.control.policy import PolicyConfig
from durr.control.step_ceiling import fit_step_ceiling
from durr.control.step_floor import LOG_SIGMA, ceiling_steps
from durr.control.stopping import policy_stops, stop_steps
from durr.infer import load_model, save_model
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, train_stage2

from test_rollout_cache import _sampler


def _noisy(log_sigmas: list[float], steps: int) -> torch.Tensor:
    features = torch.zeros(len(log_sigmas), steps + 1, NUM_FEATURES)
    features[:, :, LOG_SIGMA] = torch.tensor(log_sigmas)[:, None]
    return features


def _never_stops(policy) -> None:
    with torch.no_grad():
        policy.net[-1].bias.fill_(-10.0)
        policy.net[-1].weight.zero_()


def test_the_ceiling_grows_with_the_noise_and_stops_a_policy_that_runs_on():
    law = (math.log(2.0), 1.0)                                   # at most ceil(2 sigma) steps
    log_sigmas = [math.log(0.9), math.log(2.4), math.log(9.6)]
    assert ceiling_steps(torch.tensor(log_sigmas), law).tolist() == [2, 5, 20]
    never = torch.zeros(3, 9)
    features = _noisy(log_sigmas, 8)
    assert stop_steps(never, features, step_ceiling=law).tolist() == [2, 5, 8]
    eager = torch.zeros(3, 9)
    eager[:, 1] = 1.0
    assert stop_steps(eager, features, step_ceiling=law).tolist() == [1, 1, 1]   # the policy stops first
    # over the floor: a floor above the ceiling cannot hold the run past it
    assert stop_steps(never, features, step_floor=(3.0, 0.0), step_ceiling=law).tolist() == [2, 5, 8]


def test_the_factor_is_the_best_on_the_bank_and_kept_only_if_it_helps(tiny_durr):
    # best steps 1, 2, 4 at sigma 1, 2, 4: the law is k* = sigma, i.e. (a, b) = (0, 1)
    log_sigmas = [0.0, math.log(2.0), math.log(4.0)]
    features = _noisy(log_sigmas, 8)
    peak = torch.tensor([1, 2, 4])
    steps = torch.arange(9)
    psnr = 30.0 - (steps[None, :] - peak[:, None]).abs().double()
    policy = tiny_durr("OT", "gaussian").policy
    _never_stops(policy)
    law, info = fit_step_ceiling(policy, features, psnr, factors=(1.3, 2.1, 3.1))
    assert info["law"] == pytest.approx([0.0, 1.0], abs=1e-6)
    # factor 1.3: ceil(1.3 k*) = 2, 3, 6 -> 29, 29, 28; 2.1: 3, 5, 9 (the end, 8) -> 28, 27, 26
    assert info["factor"] == 1.3 and law == pytest.approx((math.log(1.3), 1.0), abs=1e-6)
    assert info["bank_psnr_by_factor"]["1.3"] == pytest.approx(86.0 / 3)
    assert info["bank_psnr_by_factor"]["2.1"] == pytest.approx(27.0)
    assert info["bank_psnr_by_factor"]["no ceiling"] == pytest.approx(30.0 - (8 - peak).double().mean().item())
    with torch.no_grad():  # a policy that stops at step 1 already: no ceiling can help
        policy.net[-1].bias.fill_(10.0)
    law, info = fit_step_ceiling(policy, features, psnr, factors=(1.3, 2.1))
    assert law is None and info["factor"] is None


def test_rollouts_apply_the_ceiling_as_the_bank_rule_does(tiny_durr, one_thread, tmp_path):
    y = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(4)) * torch.tensor([0.2, 1.0, 3.0])[:, None, None, None]
    for knee in (None, 0.5):
        model = tiny_durr("OT", "gaussian", max_steps=12)
        _never_stops(model.policy)
        with torch.no_grad():
            feats = trajectory_features(model.unroll(y, 12), y)
        model.config.policy.knee_ratio = knee
        # at most 6 steps for the noisiest image, fewer for the others
        model.config.policy.step_ceiling = (math.log(6.0) - float(feats[:, 0, LOG_SIGMA].max()), 1.0)
        out = model.rollout(y, mode="policy")
        assert torch.equal(out.steps, policy_stops(model.policy, feats))
        assert (out.steps < 12).any()
    loaded = load_model(save_model(tmp_path / "m", model))
    assert loaded.config.policy.step_ceiling == model.config.policy.step_ceiling
    with pytest.raises(ValueError, match="step_ceiling"):
        PolicyConfig(step_ceiling=(1.0,))


def test_stage2_fits_the_ceiling_only_when_asked(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    model = tiny_durr("OT", "gaussian", max_steps=4)
    model.config.policy.step_ceiling = (1.0, 1.0)          # stale, from an earlier policy
    assert train_stage2(model, _sampler(), cfg, progress=False)["step_ceiling"] == {}
    assert model.config.policy.step_ceiling is None
    cfg.step_ceiling = True
    result = train_stage2(model, _sampler(), cfg, progress=False)["step_ceiling"]
    assert "no ceiling" in result["bank_psnr_by_factor"] and len(result["law"]) == 2
    assert (model.config.policy.step_ceiling is None) == (result["factor"] is None)
