"""Monte-Carlo SURE and the ``"sure"`` stopping mode (white Gaussian noise)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from durr.bench.methods import METHODS, ModelBundle
from durr.control.restorer import DURR, DURRConfig
from durr.control.sure import probe, sure_risk


def smooth_image(size=128, seed=0):
    """A smooth random image in [0, 1], (1, 1, size, size)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 1, size // 16, size // 16, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def box_blur(x):
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_sure_matches_the_true_error_of_a_linear_smoother():
    clean = smooth_image(256)
    sigma = torch.tensor([0.1])
    y = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    b, eps = probe(y), torch.tensor([1e-3])
    estimate = box_blur(y)
    risk = sure_risk(y, estimate, box_blur(y + eps * b), b, eps, sigma)
    true = (estimate - clean).pow(2).mean()
    assert risk.item() == pytest.approx(true.item(), abs=0.05 * sigma.item() ** 2)
    # and it tells the identity (risk sigma^2) from the smoother
    identity = sure_risk(y, y, y + eps * b, b, eps, sigma)
    assert identity.item() == pytest.approx(sigma.item() ** 2, rel=0.02)
    assert risk < identity


class Diffusion(nn.Module):
    """F(x, y) = 0.2 * discrete Laplacian of x: the heat equation, a dynamic whose best stop
    time grows with the noise level."""

    def forward(self, x, y):
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        return 0.2 * F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)


def diffusion_model(max_steps=40):
    model = DURR(DURRConfig(modality="OT", family="gaussian", max_steps=max_steps))
    model.unit = Diffusion()
    return model.eval()


def psnr(x, clean):
    return -10 * math.log10((x - clean).pow(2).mean().item())


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_sure_stop_lands_next_to_the_oracle_stop(sigma):
    clean = smooth_image(128, seed=2)
    y = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    model = diffusion_model()
    sure = model.rollout(y, mode="sure")
    oracle = model.rollout(y, mode="oracle", score=lambda x: -(x - clean).pow(2).flatten(1).mean(1))
    assert 0 < int(oracle.steps) < 40
    assert abs(int(sure.steps) - int(oracle.steps)) <= 1
    assert psnr(sure.output, clean) >= psnr(oracle.output, clean) - 0.1


def test_sure_stop_runs_longer_on_heavier_noise_and_is_batch_independent():
    clean = torch.cat([smooth_image(96, seed=s) for s in (4, 5)])
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(6))
    model = diffusion_model()
    light, heavy = model.rollout(clean + 0.03 * noise, mode="sure"), model.rollout(clean + 0.2 * noise, mode="sure")
    assert (heavy.steps > light.steps).all()
    alone = model.rollout(clean[1:] + 0.2 * noise[1:], mode="sure")
    assert int(alone.steps) == int(heavy.steps[1])
    assert torch.allclose(alone.output, heavy.output[1:], atol=1e-5)
    fixed = model.rollout(clean[1:] + 0.2 * noise[1:], mode="fixed", steps=int(alone.steps))
    assert torch.allclose(fixed.output, alone.output, atol=1e-6)
    recorded = model.rollout(clean[1:] + 0.2 * noise[1:], mode="sure", record=True)
    assert torch.equal(recorded.trajectory[-1], recorded.output)


def test_benchmark_offers_the_sure_stop_only_for_white_gaussian_noise():
    assert METHODS["durr-sure"](ModelBundle(model=diffusion_model())).unavailable() is None
    mr = DURR(DURRConfig(modality="MR", family="mr-rician"))
    reason = METHODS["durr-sure"](ModelBundle(model=mr)).unavailable()
    assert reason is not None and "white Gaussian" in reason and "mr-rician" in reason



def test_scaled_step_rounds_halves_up_and_respects_the_cap():
    from durr.control.sure import scaled_step

    assert [scaled_step(k, 2.5, 40) for k in (0, 1, 3, 20)] == [0, 3, 8, 40]
