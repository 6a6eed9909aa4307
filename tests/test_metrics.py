"""durr.metrics against scikit-image (the reference implementation named in PROTOCOL.md 4)."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from durr.metrics import metric_window, psnr, score, ssim


def _sk_ssim(x, ref):
    return structural_similarity(x, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_psnr_matches_skimage_and_closed_form(rng):
    ref = rng.random((40, 50))
    x = ref + 0.05 * rng.standard_normal(ref.shape)
    assert psnr(x, ref, 1.0) == pytest.approx(peak_signal_noise_ratio(ref, x, data_range=1.0), abs=1e-10)
    # independent of scikit-image: a constant error of 0.01 on range 1 is exactly 40 dB
    assert psnr(ref + 0.01, ref, 1.0) == pytest.approx(40.0, abs=1e-9)
    assert psnr(ref, ref, 1.0) == math.inf
    assert isinstance(psnr(x, ref, 1.0), float)


def test_ssim_matches_skimage(rng):
    ref = rng.random((64, 48))
    for noise in (0.02, 0.2):
        x = np.clip(ref + noise * rng.standard_normal(ref.shape), 0, 1)
        assert ssim(x, ref, 1.0) == pytest.approx(_sk_ssim(x, ref), abs=1e-9)
    assert ssim(ref, ref, 1.0) == pytest.approx(1.0, abs=1e-12)


def test_ct_score_maps_window_before_ssim(rng):
    yy, xx = np.mgrid[:96, :96] - 48
    ref = np.where(yy**2 + xx**2 < 40**2, 40.0, -1000.0) + np.where(yy**2 + xx**2 < 10**2, 800.0, 0)
    ref[:5] = -3024.0                                  # below the window: clipped
    x = ref + 30.0 * rng.standard_normal(ref.shape)
    out = score(x, ref, "CT")
    mapped = [(np.clip(a, -1000, 1000) + 1000) / 2000 for a in (x, ref)]
    assert out["psnr"] == pytest.approx(peak_signal_noise_ratio(mapped[1], mapped[0], data_range=1.0), abs=1e-9)
    assert out["psnr"] == pytest.approx(peak_signal_noise_ratio(np.clip(ref, -1000, 1000), np.clip(x, -1000, 1000),
                                                                data_range=2000.0), abs=1e-9)
    assert out["ssim"] == pytest.approx(_sk_ssim(mapped[0], mapped[1]), abs=1e-9)
    soft = score(x, ref, "CT", window="soft-tissue")
    mapped = [(np.clip(a, -160, 240) + 160) / 400 for a in (x, ref)]
    assert soft["ssim"] == pytest.approx(_sk_ssim(mapped[0], mapped[1]), abs=1e-9)
    assert soft["psnr"] == pytest.approx(peak_signal_noise_ratio(mapped[1], mapped[0], data_range=1.0), abs=1e-9)
    assert metric_window("CT", ref, "soft-tissue") == (-160.0, 240.0)


def test_mr_score_divides_by_reference_percentile(rng):
    ref = 800.0 * rng.random((64, 64))
    x = np.abs(ref + 20.0 * rng.standard_normal(ref.shape))
    r = np.percentile(ref, 99.5)
    assert metric_window("MR", ref) == (0.0, pytest.approx(r))
    mapped = [np.clip(a / r, 0, 1) for a in (x, ref)]
    out = score(x, ref, "MR")
    assert out["psnr"] == pytest.approx(peak_signal_noise_ratio(mapped[1], mapped[0], data_range=1.0), abs=1e-9)
    assert out["ssim"] == pytest.approx(_sk_ssim(mapped[0], mapped[1]), abs=1e-9)
    # scaling both images leaves the MR score unchanged
    assert score(3 * x, 3 * ref, "MR")["psnr"] == pytest.approx(out["psnr"], abs=1e-9)


def test_ot_and_torch_inputs(rng):
    ref = rng.random((32, 32))
    x = ref + 0.1 * rng.standard_normal(ref.shape)
    expected = score(x, ref, "OT")
    got = score(torch.tensor(x)[None, None], torch.tensor(ref, dtype=torch.float32), "OT")
    assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    mapped = np.clip(x, 0, 1)
    assert expected["ssim"] == pytest.approx(_sk_ssim(mapped, ref), abs=1e-9)


def test_errors(rng):
    a = rng.random((16, 16))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, a[:8], 1.0)
    with pytest.raises(ValueError, match="2D"):
        ssim(np.stack([a, a]), np.stack([a, a]), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, 0)
    with pytest.raises(ValueError, match="valid"):
        score(a, a, "PET")
    with pytest.raises(ValueError, match="valid"):
        score(a, a, "MR", window="soft-tissue")
    with pytest.raises(ValueError, match="percentile"):
        score(a, np.zeros_like(a), "MR")
    with pytest.raises(ValueError, match="at least"):
        ssim(a[:8, :8], a[:8, :8], 1.0)
