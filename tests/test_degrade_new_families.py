"""The ``ct-sparseview`` and ``mr-undersample`` families (docs/protocol_new_families.md)."""

import math

import numpy as np
import pytest
import torch

from durr.data.sampling import sample_seen_levels
from durr.data.sources import GROUP_OF_FAMILY
from durr.degrade import CTSparseView, MRUndersample, get_degradation
from durr.degrade.ct_lowdose import line_integrals, reconstruct_hu
from durr.degrade.mr_undersample import centre_lines, sampling_mask
from durr.degrade.radon import circle_mask

NEW = ("ct-sparseview", "mr-undersample")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The machine is shared: every test here runs on one intra-op thread."""


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _rmse(a, b):
    return ((a - b) ** 2).mean().sqrt().item()


def _ct_phantom(batch=1, height=64, width=64):
    """HU slices (B, 1, H, W): a water ellipse with a bone bar and a varying insert, in air."""
    yy, xx = torch.meshgrid(torch.arange(height) - height // 2, torch.arange(width) - width // 2, indexing="ij")
    body = (yy / (0.4 * height)) ** 2 + (xx / (0.4 * width)) ** 2 <= 1
    x = torch.where(body, 0.0, -1000.0).expand(batch, 1, height, width).clone()
    x[..., height // 2 - 3:height // 2 + 3, width // 4:width // 2] = 700.0
    x[..., height // 4:height // 3, width // 2:3 * width // 4] += 200 * torch.rand(batch, 1, 1, 1, generator=_gen(5))
    return x


def _mr_phantom(batch=1, height=64, width=64):
    """Scanner-unit images (B, 1, H, W): a bright block with texture on a dark background."""
    x = torch.zeros(batch, 1, height, width)
    x[..., height // 4:3 * height // 4, width // 5:4 * width // 5] = 800.0
    x[..., height // 3:height // 2, width // 3:width // 2] = 300.0
    return x + 100 * torch.rand(batch, 1, height, width, generator=_gen(9)) * (x > 0)


def _sample(family, batch=1, height=64, width=64):
    if family == "ct-sparseview":
        return _ct_phantom(batch, height, width), 120.0
    return _mr_phantom(batch, height, width), 4.0


# ---------------------------------------------------------------- registry and attributes

def test_attributes_and_groups():
    expected = {"ct-sparseview": ("CT", (120.0, 360.0), (90.0, 60.0), "ct"),
                "mr-undersample": ("MR", (2.0, 4.0), (6.0, 8.0), "mr")}
    for name, (modality, seen, unseen, group) in expected.items():
        deg = get_degradation(name)
        assert deg.name == name and deg.modality == modality
        assert deg.seen == seen and deg.unseen == unseen and deg.level_unit
        assert GROUP_OF_FAMILY[name] == group
    assert get_degradation("ct-sparseview").level_grid == (360, 300, 240, 180, 144, 120, 90, 60)
    assert get_degradation("mr-undersample").level_grid is None


def test_sparseview_severity_grows_as_views_fall():
    deg = get_degradation("ct-sparseview")
    views = torch.tensor([720.0, 360.0, 120.0, 60.0])
    severity = deg.severity(views)
    assert torch.all(severity[1:] > severity[:-1]) and severity[0].item() == pytest.approx(1.0)
    torch.testing.assert_close(deg.level_of_severity(severity), views.double())


def test_seen_level_sampling_draws_grid_views_in_the_seen_range():
    deg = get_degradation("ct-sparseview")
    levels = sample_seen_levels("ct-sparseview", deg.seen, 400, _gen(0))
    allowed = {g for g in deg.level_grid if 120 <= g <= 360}
    assert set(levels.tolist()) <= allowed
    assert len(set(levels.tolist())) >= 4                  # not stuck on one grid level


# ---------------------------------------------------------------- common behaviour

@pytest.mark.parametrize("family", NEW)
@pytest.mark.parametrize("shape", [(64, 64), (45, 38)])
def test_shapes_dtypes_and_seeded_determinism(family, shape):
    deg = get_degradation(family)
    x, level = _sample(family, 2, *shape)
    a = deg(x, level, generator=_gen(7))
    b = deg(x, level, generator=_gen(7))
    c = deg(x, level, generator=_gen(8))
    for t in (a.noisy, a.reference):
        assert t.shape == x.shape and t.dtype == torch.float32 and torch.isfinite(t).all()
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.reference, b.reference)
    assert not torch.equal(a.noisy, c.noisy)
    assert torch.equal(a.reference, c.reference)


@pytest.mark.parametrize("family, levels", [("ct-sparseview", [120.0, 60.0, 120.0, 300.0]),
                                            ("mr-undersample", [2.0, 4.0, 6.5, 2.0])])
def test_batch_with_mixed_levels_equals_images_one_by_one(family, levels):
    deg = get_degradation(family)
    x, _ = _sample(family, batch=len(levels))
    x = x + torch.arange(len(levels)).view(-1, 1, 1, 1) * 50.0      # distinct images
    spacing = torch.tensor([0.7, 0.5, 1.0, 0.8])
    batched = deg(x, torch.tensor(levels), generator=_gen(3), spacing_mm=spacing)
    g = _gen(3)
    for i, level in enumerate(levels):
        single = deg(x[i:i + 1], level, generator=g, spacing_mm=float(spacing[i]))
        torch.testing.assert_close(batched.noisy[i:i + 1], single.noisy, atol=1e-2, rtol=1e-5)
        torch.testing.assert_close(batched.reference[i:i + 1], single.reference, atol=1e-2, rtol=1e-5)


@pytest.mark.parametrize("family", NEW)
def test_apply_numpy_volume(family):
    deg = get_degradation(family)
    x, level = _sample(family, batch=3, height=32, width=32)
    noisy, reference = deg.apply_numpy(x[:, 0].numpy(), level, seed=4)
    again, _ = deg.apply_numpy(x[:, 0].numpy(), level, seed=4)
    assert noisy.shape == (3, 32, 32) and noisy.dtype == np.float32 and reference.shape == noisy.shape
    np.testing.assert_array_equal(noisy, again)


@pytest.mark.parametrize("family, bad", [("ct-sparseview", 90.4), ("ct-sparseview", 0.0),
                                         ("ct-sparseview", 721.0), ("ct-sparseview", -5.0),
                                         ("ct-sparseview", float("nan")), ("mr-undersample", 0.5),
                                         ("mr-undersample", 0.0), ("mr-undersample", float("inf")),
                                         ("mr-undersample", float("nan"))])
def test_bad_levels_raise_naming_the_family(family, bad):
    deg = get_degradation(family)
    x, level = _sample(family, batch=2, height=16, width=16)
    with pytest.raises(ValueError, match=family):
        deg(x, torch.tensor([level, bad]))


def test_bad_constructor_options():
    for kwargs in ({"dose": 0.0}, {"dose": -1.0}, {"dose": float("inf")}):
        with pytest.raises(ValueError, match="ct-sparseview"):
            CTSparseView(**kwargs)
    for noise in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="mr-undersample"):
            MRUndersample(noise=noise)


# ---------------------------------------------------------------- ct-sparseview physics

def test_full_scan_without_noise_is_the_reference_and_the_reference_is_ct_lowdose():
    x = _ct_phantom(2)
    out = CTSparseView(dose=None)(x, 720.0, spacing_mm=torch.tensor([0.7, 0.9]))
    torch.testing.assert_close(out.noisy, out.reference, atol=1e-3, rtol=0)
    lowdose = get_degradation("ct-lowdose")(x, 0.3, generator=_gen(0), spacing_mm=torch.tensor([0.7, 0.9]))
    torch.testing.assert_close(out.reference, lowdose.reference, atol=1e-3, rtol=0)


@pytest.mark.parametrize("dose", [None, 1.0])
def test_fewer_views_give_larger_error(dose):
    x = _ct_phantom()
    deg = CTSparseView(dose=dose)
    errors = [_rmse(*deg(x, float(n), generator=_gen(0))) for n in (720, 360, 180, 90, 60, 30)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors
    if dose is not None:
        assert errors[0] > 0.5            # the full scan is noisy at 1e6 photons per ray


def test_sparse_views_match_a_direct_n_view_reconstruction():
    """n dividing 720 reuses the 720-view operators, odd n the 2n-view ones: both must equal
    the plain n-view FBP (checked directly for even n, through the 2n embedding for odd n)."""
    x = _ct_phantom()
    spacing = torch.tensor([0.7])
    deg = CTSparseView(dose=None)
    direct = reconstruct_hu(line_integrals(x, spacing, 90, False), x, spacing, False)
    torch.testing.assert_close(deg(x, 90.0).noisy, direct, atol=1e-2, rtol=0)
    odd = deg(x, 7.0).noisy                         # 7 views: 14-view geometry, every other view
    sino = line_integrals(x, spacing, 14, False)
    sino[:, 1::2] = 0
    torch.testing.assert_close(odd, reconstruct_hu(2 * sino, x, spacing, False), atol=1e-2, rtol=0)


def test_sparseview_circle_keeps_clean_values_outside_the_disk():
    x = _ct_phantom(height=48, width=48)
    out = CTSparseView(circle=True)(x, 60.0, generator=_gen(0))
    outside = ~circle_mask(48, 48)
    assert torch.equal(out.noisy[0, 0][outside], x[0, 0][outside])
    assert torch.equal(out.reference[0, 0][outside], x[0, 0][outside])


# ---------------------------------------------------------------- mr-undersample physics

@pytest.mark.parametrize("height", [64, 65, 96, 7])
@pytest.mark.parametrize("acceleration", [1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
def test_mask_fraction_and_centre(height, acceleration):
    centre = centre_lines(height)
    assert centre.numel() == max(1, round(0.08 * height + 1e-9))
    assert 0 in centre.tolist()                                      # k_y = 0 is always sampled
    for seed in range(3):
        mask = sampling_mask(height, acceleration, _gen(seed))
        assert mask.dtype == torch.bool and mask.shape == (height,)
        assert mask[centre].all()
        assert int(mask.sum()) == max(centre.numel(), math.floor(height / acceleration + 0.5))
        assert abs(mask.float().mean().item() - 1 / acceleration) <= max(0.5 / height, centre.numel() / height)


def test_mask_centre_is_the_middle_block_after_fftshift_and_random_lines_vary():
    mask = torch.fft.fftshift(sampling_mask(100, 4.0, _gen(0)))
    assert mask[46:54].all()                                          # 8 lines around row 50
    masks = {tuple(sampling_mask(100, 4.0, _gen(seed)).tolist()) for seed in range(5)}
    assert len(masks) == 5


def test_fully_sampled_without_noise_is_the_clean_image():
    x = _mr_phantom(2, 45, 38)
    out = MRUndersample(noise=0.0)(x, 1.0, generator=_gen(0))
    torch.testing.assert_close(out.noisy, x, atol=1e-3, rtol=1e-5)
    assert torch.equal(out.reference, x)


def test_higher_acceleration_gives_larger_error():
    x = _mr_phantom()
    deg = MRUndersample(noise=0.0)
    errors = [_rmse(*deg(x, r, generator=_gen(0))) for r in (1.0, 2.0, 4.0, 8.0)]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


def test_fully_sampled_noise_is_mr_rician():
    """At R = 1 the k-space noise is white complex Gaussian in the image too: background mean
    s r sqrt(pi/2), as mr-rician at the same level."""
    x = torch.zeros(1, 1, 128, 128)
    x[..., 40:88, 40:88] = 1000.0                                    # r = 1000
    out = MRUndersample(noise=4.0)(x, 1.0, generator=_gen(1))
    assert out.noisy[x == 0].mean().item() == pytest.approx(0.04 * 1000 * math.sqrt(math.pi / 2), rel=0.05)
    assert (out.noisy >= 0).all()
