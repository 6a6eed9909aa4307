"""The stopping policy's state statistics: the residual-whiteness pair in particular."""

import torch

from durr.control.features import FEATURE_NAMES, NUM_FEATURES, residual_whiteness, state_features


def _scene(seed: int = 0, size: int = 128, sigma: float = 0.1):
    """A smooth image (a blurred disc and a ramp) and the same plus white Gaussian noise, (1, 1, H, W)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    clean = ((xx ** 2 + yy ** 2) < 0.4).float() + 0.5 * xx
    clean = torch.nn.functional.avg_pool2d(clean[None, None], 5, 1, 2)
    return clean, clean + sigma * torch.randn(clean.shape, generator=g)


def test_removing_only_noise_leaves_a_white_residual():
    clean, noisy = _scene()
    sigma = torch.tensor([0.1])
    lag, structure = residual_whiteness(clean, noisy, sigma)
    assert abs(float(lag)) < 0.05
    assert abs(float(structure) - 1.0) < 0.1


def test_removing_anatomy_makes_the_residual_correlated():
    clean, noisy = _scene()
    oversmoothed = torch.nn.functional.avg_pool2d(noisy, 15, 1, 7, count_include_pad=False)
    lag, structure = residual_whiteness(oversmoothed, noisy, torch.tensor([0.1]))
    clean_lag, clean_structure = residual_whiteness(clean, noisy, torch.tensor([0.1]))
    assert float(lag) > float(clean_lag) + 0.1
    assert float(structure) > float(clean_structure) + 0.2


def test_whiteness_is_scale_free_and_defined_before_the_first_step():
    clean, noisy = _scene(seed=1)
    x = 0.5 * (clean + noisy)
    a = residual_whiteness(x, noisy, torch.tensor([0.1]))
    b = residual_whiteness(7.0 * x, 7.0 * noisy, torch.tensor([0.7]))
    assert torch.allclose(torch.stack(a), torch.stack(b), atol=1e-4)
    lag0, structure0 = residual_whiteness(noisy, noisy, torch.tensor([0.1]))
    assert float(lag0) == 0.0 and float(structure0) == 1.0


def test_state_features_carry_every_named_statistic():
    clean, noisy = _scene(seed=2)
    y = torch.cat([noisy, 2 * noisy])
    x = torch.cat([clean, 2 * clean])
    feats = state_features(x, y, y, step=3)
    assert feats.shape == (2, NUM_FEATURES) and torch.isfinite(feats).all()
    lag, structure = residual_whiteness(x, y, torch.tensor([0.1, 0.2]))
    assert torch.allclose(feats[:, FEATURE_NAMES.index("residual_lag1")], lag, atol=1e-5)
    assert torch.allclose(feats[:, FEATURE_NAMES.index("residual_structure")], structure, atol=1e-5)


def test_the_fast_median_is_torchs_lower_median():
    from durr.control.features import _lower_median

    rows = torch.randn(3, 1000, generator=torch.Generator().manual_seed(5)).abs()
    assert torch.equal(_lower_median(rows), rows.median(dim=1).values)
    assert torch.equal(_lower_median(rows[:, :999].double()), rows[:, :999].double().median(dim=1).values)
