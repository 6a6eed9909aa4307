"""REINFORCE learns a level-dependent stopping time on a toy problem where the best is known."""

import torch

from durr.control.features import FEATURE_NAMES, NUM_FEATURES
from durr.control.policy import PolicyConfig, StopPolicy
from durr.train.reinforce import (ReinforceConfig, episode_return, greedy_stops, sample_stops,
                                  stop_log_prob, train_policy)


def toy_bank(n=2000, horizon=20, seed=0):
    """PSNR peaks at step 3 + 10 * level; features are (level, n/10) padded with noise."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(n, generator=g)
    best = (3 + 10 * level).round()
    steps = torch.arange(horizon + 1).float()
    psnr = 30 - 0.3 * (steps[None] - best[:, None]).pow(2)
    feats = torch.randn(n, horizon + 1, NUM_FEATURES, generator=g) * 0.1
    feats[..., FEATURE_NAMES.index("log_sigma_input")] = level[:, None]
    feats[..., FEATURE_NAMES.index("step_over_ten")] = steps[None] / 10
    return feats, psnr.double(), best.long()


def test_reinforce_learns_the_level_dependent_stop():
    torch.manual_seed(0)
    feats, psnr, best = toy_bank()
    policy = StopPolicy(PolicyConfig(features=("log_sigma_input", "step_over_ten")))  # (level, n / 10)
    train_policy(policy, feats, psnr, ReinforceConfig(iterations=1500, batch=256, lr=1e-2, entropy_weight=0.001))
    test_feats, _, test_best = toy_bank(n=1000, seed=1)
    with torch.no_grad():
        stops = greedy_stops(policy.stop_probability(test_feats))
    within_one = ((stops - test_best).abs() <= 1).float().mean().item()
    assert within_one >= 0.9, f"only {within_one:.1%} of episodes stopped within one step of the best"
    # and the learned stop really moves with the level (not a constant)
    assert stops[test_feats[:, 0, 0] > 0.8].float().mean() > stops[test_feats[:, 0, 0] < 0.2].float().mean() + 5


def test_log_prob_matches_sampling_frequencies():
    logits = torch.tensor([[-1.0, 0.5, -0.3, 2.0]]).repeat(20000, 1)
    taus = sample_stops(torch.sigmoid(logits), torch.Generator().manual_seed(0))
    for tau in range(3):  # the horizon (3) is truncation, its probability is the rest
        empirical = (taus == tau).float().mean()
        expected = stop_log_prob(logits[:1], torch.tensor([tau])).exp()
        assert abs(float(empirical - expected)) < 0.01


def test_episode_return_is_gain_minus_cost():
    psnr = torch.tensor([[20.0, 22.0, 23.0, 22.5]], dtype=torch.float64)
    assert episode_return(psnr, torch.tensor([2]), 0.1).item() == pytest_approx(3.0 - 0.2)


def pytest_approx(v):
    import pytest
    return pytest.approx(v)
