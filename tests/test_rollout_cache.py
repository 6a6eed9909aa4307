"""The stage-2 rollout cache belongs to one restorer and one degradation bank: others roll out anew."""

import torch

import durr.train.stage2 as stage2
from durr.degrade import get_degradation
from durr.train.pipeline import sampler_from_bank
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, fresh_policy, restorer_fingerprint, train_stage2


def _sampler(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    clean = [torch.rand(40, 40, generator=gen) for _ in range(3)]
    degraded = [c + 0.1 * torch.randn(40, 40, generator=gen) for c in clean]
    return sampler_from_bank((get_degradation("gaussian"), (degraded, clean, torch.full((3,), 25.0,
                                                                                         dtype=torch.float64))), 32)


def test_rollout_cache_is_reused_for_the_same_restorer_only(tmp_path, tiny_durr, one_thread, monkeypatch):
    calls = []
    real = stage2.build_rollout_bank
    monkeypatch.setattr(stage2, "build_rollout_bank", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    cache = tmp_path / "rollouts.pt"
    model = tiny_durr("OT", "gaussian", max_steps=4)
    train_stage2(model, _sampler(), cfg, progress=False, bank_cache=cache)
    train_stage2(model, _sampler(), cfg, progress=False, bank_cache=cache)
    assert len(calls) == 1

    before = restorer_fingerprint(model)
    with torch.no_grad():
        next(model.unit.parameters()).add_(0.01)
    assert restorer_fingerprint(model) != before
    train_stage2(model, _sampler(), cfg, progress=False, bank_cache=cache)
    assert len(calls) == 2
    assert torch.load(cache, weights_only=True)["restorer"] == restorer_fingerprint(model)

    train_stage2(model, _sampler(seed=1), cfg, progress=False, bank_cache=cache)   # another degradation bank
    assert len(calls) == 3
    train_stage2(model, _sampler(seed=1), cfg, progress=False, bank_cache=cache)
    assert len(calls) == 3


def test_stage2_from_fresh_policy_does_not_depend_on_the_policy_the_model_held(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=20, batch=4))
    trained = []
    for start in (0, 1):
        model = tiny_durr("OT", "gaussian", max_steps=4)
        with torch.no_grad():  # two different policies in the folder before stage 2
            for p in model.policy.parameters():
                p.normal_(generator=torch.Generator().manual_seed(start))
        fresh_policy(model, cfg.reinforce.seed)
        train_stage2(model, _sampler(), cfg, progress=False)
        trained.append(model.policy.state_dict())
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
    untrained = tiny_durr("OT", "gaussian", max_steps=4)
    fresh_policy(untrained, cfg.reinforce.seed)
    assert not all(torch.equal(trained[0][k], untrained.policy.state_dict()[k]) for k in trained[0])
