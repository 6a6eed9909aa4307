"""The level scale (``durr.control.level_scale``): heavier-than-seen noise runs as the heaviest seen level."""

import pytest
import torch

from durr.control.features import noise_sigma
from durr.control.level_scale import fit_noise_ref, level_scale
from durr.degrade import get_degradation
from durr.infer import load_model, save_model
from durr.train.reinforce import ReinforceConfig
from durr.train.stage2 import Stage2Config, train_stage2

from durr.train.pipeline import sampler_from_bank


def _noisy_batch(sigmas: list[float], size: int = 32) -> torch.Tensor:
    """(B, 1, size, size): a smooth ramp plus white noise of each sigma."""
    g = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0.2, 0.8, size)[None, None, None, :].expand(len(sigmas), 1, size, size)
    return ramp + torch.tensor(sigmas)[:, None, None, None] * torch.randn(len(sigmas), 1, size, size, generator=g)


def test_the_factor_scales_only_inputs_noisier_than_the_reference():
    sigma = torch.tensor([0.01, 0.05, 0.1, 0.2])
    assert torch.allclose(level_scale(sigma, 0.05), torch.tensor([1.0, 1.0, 0.5, 0.25]))
    assert torch.equal(level_scale(sigma, None), torch.ones(4))


def test_the_reference_is_the_median_noise_of_the_heaviest_fifth_of_the_seen_range():
    deg = get_degradation("mr-rician")                     # seen 1..5 percent
    levels = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.3, 4.6, 4.9], dtype=torch.float64)
    sigmas = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.010, 0.020, 0.030], dtype=torch.float64)
    assert fit_noise_ref(sigmas, levels, deg) == pytest.approx(0.020)
    ct = get_degradation("ct-lowdose")                     # heavier = lower dose
    doses = torch.tensor([0.5, 0.3, 0.11, 0.105, 0.1], dtype=torch.float64)
    assert fit_noise_ref(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), doses, ct) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="heaviest"):
        fit_noise_ref(sigmas[:2], levels[:2], deg)


def test_a_scaled_rollout_is_the_dynamic_of_the_scaled_input_scaled_back(tiny_durr, one_thread, tmp_path):
    y = _noisy_batch([0.02, 0.2])
    model = tiny_durr("OT", "gaussian", max_steps=6)
    plain = {mode: model.rollout(y, mode=mode, steps=4, score=lambda x: -x.var(dim=(1, 2, 3)), record=True)
             for mode in ("policy", "fixed", "oracle")}
    ref = float(noise_sigma(y)[0]) * 1.5                   # between the two inputs' noise levels
    model.config.noise_ref = ref
    a = float(level_scale(noise_sigma(y), ref)[1])
    assert 0.0 < a < 1.0
    scaled = model.rollout(y, mode="fixed", steps=4, record=True)
    by_hand = model.rollout(y[1:] * a, mode="fixed", steps=4, record=True)
    # the quiet input runs as before; the noisy one is the scaled input's dynamic, scaled back
    assert torch.allclose(scaled.output[:1], plain["fixed"].output[:1], atol=1e-6)
    assert torch.allclose(scaled.output[1:], by_hand.output / a, atol=1e-6)
    assert torch.allclose(scaled.trajectory[2][1:], by_hand.trajectory[2] / a, atol=1e-6)
    assert not torch.allclose(scaled.output[1:], plain["fixed"].output[1:], atol=1e-4)
    # the oracle scores estimates in the caller's domain: its best step is that of the scaled-back trajectory
    oracle = model.rollout(y, mode="oracle", score=lambda x: -x.var(dim=(1, 2, 3)), record=True)
    variances = torch.stack([-t.var(dim=(1, 2, 3)) for t in oracle.trajectory], dim=1)
    assert torch.equal(oracle.steps, variances.argmax(dim=1))
    policy = model.rollout(y, mode="policy")
    assert torch.equal(policy.steps[:1], plain["policy"].steps[:1])
    # one image alone, or in a batch: the same result
    alone = model.rollout(y[1:], mode="policy")
    assert torch.allclose(alone.output, policy.output[1:], atol=1e-5)
    loaded = load_model(save_model(tmp_path / "m", model))
    assert loaded.config.noise_ref == pytest.approx(ref)


def _heavy_sampler():
    """Three smooth 40x40 gaussian bank slices at level 33 (the heaviest fifth of the seen range 5..35)."""
    gen = torch.Generator().manual_seed(0)
    clean = [torch.linspace(0.1, 0.9, 40)[None, :].expand(40, 40) * (k + 1) / 3 for k in range(3)]
    degraded = [c + 33 / 255 * torch.randn(40, 40, generator=gen) for c in clean]
    return sampler_from_bank((get_degradation("gaussian"), (degraded, clean, torch.full((3,), 33.0, dtype=torch.float64))), 32)


def test_stage2_fits_the_reference_only_when_asked(tiny_durr, one_thread):
    cfg = Stage2Config(episodes=8, patch=32, horizon=4, chunk=4, reinforce=ReinforceConfig(iterations=5, batch=4))
    model = tiny_durr("OT", "gaussian", max_steps=4)
    model.config.noise_ref = 0.5                            # stale, from an earlier policy
    assert train_stage2(model, _heavy_sampler(), cfg, progress=False)["noise_ref"] is None
    assert model.config.noise_ref is None
    cfg.level_scale = True
    ref = train_stage2(model, _heavy_sampler(), cfg, progress=False)["noise_ref"]
    assert model.config.noise_ref == ref == pytest.approx(33 / 255, rel=0.25)  # the inputs' Haar-MAD noise level


def test_held_out_trajectories_are_scaled_as_rollouts_are(tiny_durr, one_thread):
    from durr.train.heldout import scan_trajectory

    model = tiny_durr("MR", "mr-rician", max_steps=5)
    y = _noisy_batch([0.2])
    model.config.noise_ref = float(noise_sigma(y)[0]) / 3
    trajectory, _ = scan_trajectory(model, y[0, 0].numpy())
    assert torch.allclose(trajectory[3], model.restore(y, mode="fixed", steps=3).output[0, 0], atol=1e-5)
