"""User-defined degradations: the ``blur`` family, ``load_degradation`` specs and ``durr degrade``."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from durr.cli import main
from durr.data.sampling import severity
from durr.degrade import get_degradation, load_degradation
from durr.degrade import registry as registry_module
from durr.degrade.custom import Composite, parse_levels

MODULE = "user_degradations"

BLUR_THEN_RICIAN = """\
name: blur-then-rician
modality: MR
seen: [1.0, 5.0]
unseen: [7.0, 9.0]
steps:
  - family: blur
    level: 1.5
  - family: mr-rician
    level: level
    options: {}
"""


@pytest.fixture(autouse=True)
def setup(monkeypatch, one_thread):
    """``user_degradations`` importable; the registry restored after each test."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mr(batch=2, n=32):
    return 500 * torch.rand(batch, 1, n, n, generator=_gen(123))


def _yaml(tmp_path, text, name="deg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- blur

def test_blur_attributes_identity_at_zero_and_reference_is_clean():
    blur = get_degradation("blur")
    assert (blur.modality, blur.seen, blur.unseen) == ("OT", (0.5, 2.0), (3.0, 4.0))
    clean = _mr()
    out = blur(clean, 0.0)
    assert torch.equal(out.noisy, clean) and torch.equal(out.reference, clean)
    out = blur(clean, 1.0)
    assert torch.equal(out.reference, clean) and not torch.allclose(out.noisy, clean)


def test_blur_per_image_levels_match_scipy_and_single_images():
    clean = torch.rand(3, 1, 32, 40, generator=_gen(1))
    levels = torch.tensor([0.0, 1.3, 9.0])       # 9: the kernel (radius 36) is wider than the image
    batch = get_degradation("blur")(clean, levels).noisy
    for i, sigma in enumerate(levels.tolist()):
        expected = gaussian_filter(clean[i, 0].double().numpy(), sigma, mode="mirror", truncate=4.0)
        np.testing.assert_allclose(batch[i, 0].numpy(), expected, atol=1e-5)
        single = get_degradation("blur")(clean[i:i + 1], sigma).noisy
        torch.testing.assert_close(batch[i:i + 1], single, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- callables

def test_callable_spec_is_wrapped_and_registered():
    import user_degradations

    deg = load_degradation(f"{MODULE}:speckle", levels=(0.1, 0.3))
    assert (deg.name, deg.modality, deg.seen, deg.unseen) == (f"{MODULE}:speckle", "OT", (0.1, 0.3), ())
    assert get_degradation(deg.name) is deg
    clean, level = torch.rand(2, 1, 32, 32, generator=_gen(2)), torch.tensor([0.1, 0.3])
    out = deg(clean, level, generator=_gen(5))
    torch.testing.assert_close(out.noisy, user_degradations.speckle(clean, level, _gen(5)))
    assert torch.equal(out.reference, clean)
    assert severity(deg.name, level).tolist() == pytest.approx([0.1, 0.3])
    assert load_degradation(f"{MODULE}:dim", levels=(0, 1), modality="MR").modality == "MR"


@pytest.mark.parametrize("spec, kwargs, problem", [
    ("no_such_module_xyz:fn", {"levels": (0, 1)}, "cannot import module 'no_such_module_xyz'"),
    (f"{MODULE}:missing", {"levels": (0, 1)}, "has no attribute 'missing'"),
    (f"{MODULE}:NOT_A_FUNCTION", {"levels": (0, 1)}, "is not callable"),
    (f"{MODULE}:two_args", {"levels": (0, 1)}, "must accept 3 positional arguments"),
    (f"{MODULE}:speckle", {}, "needs its training level range: pass --levels A:B"),
    (f"{MODULE}:speckle", {"levels": (2, 1)}, "lo > hi"),
    ("salt-and-pepper", {}, "unknown degradation; valid: blur"),
    ("ct-lowdose", {"options": {"circel": True}}, "bad options {'circel': True}; accepted: circle"),
    ("gaussian", {"modality": "MR"}, "degrades OT images, not MR"),
    ("missing.yaml", {}, "no such file"),
])
def test_load_errors_name_the_spec_and_the_problem(spec, kwargs, problem):
    with pytest.raises(ValueError) as info:
        load_degradation(spec, **kwargs)
    message = str(info.value)
    assert problem in message and spec in message and "\n" not in message


@pytest.mark.parametrize("function, problem", [
    ("returns_array", "returned a ndarray, expected a torch.Tensor"),
    ("wrong_shape", "returned shape (2, 1, 32, 31), expected the input's (2, 1, 32, 32)"),
])
def test_bad_outputs_are_caught(function, problem):
    deg = load_degradation(f"{MODULE}:{function}", levels=(0, 1))
    with pytest.raises(ValueError, match=f"{MODULE}:{function}: ") as info:
        deg(torch.rand(2, 1, 32, 32), 0.5)
    assert problem in str(info.value)


def test_non_finite_outputs_are_caught_on_every_call():
    deg = load_degradation(f"{MODULE}:nan_above_one", levels=(0, 2))
    deg(torch.rand(2, 1, 32, 32), 0.5)
    with pytest.raises(ValueError, match=f"{MODULE}:nan_above_one: returned 1024 NaN or inf values"):
        deg(torch.rand(2, 1, 32, 32), torch.tensor([0.5, 2.0]))


def test_options_and_levels_of_a_registered_family():
    assert load_degradation("ct-lowdose", options={"circle": True}).circle
    gaussian = load_degradation("gaussian", levels=(10, 20))
    assert gaussian.seen == (10.0, 20.0) and get_degradation("gaussian").seen == (5.0, 35.0)


@pytest.mark.parametrize("text", ["3", "a:b", "2:1", "-1:2", "1:inf", ""])
def test_parse_levels(text):
    assert parse_levels("0.5:2") == (0.5, 2.0)
    with pytest.raises(ValueError, match="levels"):
        parse_levels(text)


# ---------------------------------------------------------------- YAML composition

def test_yaml_composition_equals_the_steps_by_hand(tmp_path):
    deg = load_degradation(str(_yaml(tmp_path, BLUR_THEN_RICIAN)))
    assert isinstance(deg, Composite) and get_degradation("blur-then-rician") is deg
    assert (deg.modality, deg.seen, deg.unseen) == ("MR", (1.0, 5.0), (7.0, 9.0))
    assert deg.level_unit.startswith("mr-rician: ")
    clean, level = _mr(), torch.tensor([2.0, 4.0])
    out = deg(clean, level, generator=_gen(7))
    blurred = get_degradation("blur")(clean, 1.5).noisy
    by_hand = get_degradation("mr-rician")(blurred, level, generator=_gen(7)).noisy
    torch.testing.assert_close(out.noisy, by_hand)
    assert torch.equal(out.reference, clean)       # the first step's reference


def test_yaml_callable_step_levels_override_and_severity_of_the_level_step(tmp_path):
    import user_degradations

    path = _yaml(tmp_path, f"steps:\n  - {{family: '{MODULE}:speckle', level: level}}\n"
                           "  - {family: blur, level: 1.0}\n", name="speckle-blur.yml")
    deg = load_degradation(str(path), levels=(0.1, 0.2))
    assert (deg.name, deg.modality, deg.seen) == ("speckle-blur", "OT", (0.1, 0.2))
    clean = torch.rand(2, 1, 32, 32, generator=_gen(3))
    expected = user_degradations.speckle(clean, torch.tensor([0.2, 0.2]), _gen(4))
    expected = get_degradation("blur")(expected, 1.0).noisy
    torch.testing.assert_close(deg(clean, 0.2, generator=_gen(4)).noisy, expected)

    ct = load_degradation(str(_yaml(tmp_path, "seen: [0.1, 0.5]\nsteps:\n  - {family: blur, level: 1}\n"
                                              "  - {family: ct-lowdose, level: level}\n")))
    assert ct.modality == "CT"
    assert ct.severity(0.25).item() == pytest.approx(2.0)     # ct-lowdose's 1/sqrt(d)


@pytest.mark.parametrize("text, problem", [
    ("steps: [", "not valid YAML"),
    ("nmae: x\n", "unknown key(s) nmae"),
    ("- 1\n", "expected a mapping with keys name"),
    ("seen: [1, 5]\nsteps: []\n", "'steps' must be a non-empty list"),
    ("seen: [1, 5]\nsteps:\n  - {family: foo, level: level}\n", "step 1: unknown family 'foo'"),
    ("seen: [1, 5]\nsteps:\n  - {family: blur, lvl: 1}\n", "step 1: unknown key(s) lvl"),
    ("seen: [1, 5]\nsteps:\n  - {family: blur}\n", "step 1: level must be a number or 'level'"),
    ("seen: [1, 5]\nsteps:\n  - {family: blur, level: 1}\n", "no step takes the composite's level"),
    ("steps:\n  - {family: blur, level: level}\n", "no 'seen' level range"),
    ("seen: [1]\nsteps:\n  - {family: blur, level: level}\n", "expected a level range [lo, hi]"),
    ("modality: CT\nseen: [1, 5]\nsteps:\n  - {family: mr-rician, level: level}\n",
     "step 1 (mr-rician) degrades MR images, not CT"),
    ("seen: [1, 5]\nsteps:\n  - {family: mr-rician, level: level, options: {foo: 1}}\n",
     "step 1: mr-rician: bad options {'foo': 1}; accepted: none"),
    (f"seen: [1, 5]\nsteps:\n  - {{family: '{MODULE}:two_args', level: level}}\n",
     f"step 1: {MODULE}:two_args: two_args(clean, level) must accept 3 positional arguments"),
    ("name: gaussian\nseen: [1, 5]\nsteps:\n  - {family: blur, level: level}\n",
     "gaussian: is the name of a registered family"),
])
def test_yaml_errors_name_the_file_and_the_problem(tmp_path, text, problem):
    path = _yaml(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_degradation(str(path))
    message = str(info.value)
    assert problem in message and "\n" not in message
    assert str(path) in message or problem.startswith("gaussian")
    assert get_degradation("gaussian").name == "gaussian"


# ---------------------------------------------------------------- durr degrade

def _cli(*args) -> int:
    return main(["degrade", *map(str, args)])


def test_durr_degrade_with_a_yaml_spec_on_a_volume(tmp_path, capsys):
    volume = (500 * np.random.default_rng(0).random((3, 32, 32))).astype(np.float32)
    np.save(tmp_path / "clean.npy", volume)
    spec = _yaml(tmp_path, BLUR_THEN_RICIAN)
    out = tmp_path / "noisy.npy"
    assert _cli(tmp_path / "clean.npy", out, "--family", spec, "--level", 3, "--seed", 1, "--modality", "mr") == 0
    assert "blur-then-rician at level 3" in capsys.readouterr().out
    expected, _ = load_degradation(str(spec)).apply_numpy(volume, 3.0, seed=1)
    np.testing.assert_array_equal(np.load(out), expected)


def test_durr_degrade_with_a_callable_and_its_errors(tmp_path, capsys):
    image = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    np.save(tmp_path / "clean.npy", image)
    out = tmp_path / "dim.npy"
    assert _cli(tmp_path / "clean.npy", out, "--family", f"{MODULE}:dim", "--levels", "0:1", "--level", 0.25) == 0
    np.testing.assert_allclose(np.load(out), 0.75 * image)

    assert _cli(tmp_path / "clean.npy", out, "--family", f"{MODULE}:dim", "--level", 0.25) == 2
    assert "pass --levels A:B" in capsys.readouterr().err
    assert _cli(tmp_path / "clean.npy", out, "--family", f"{MODULE}:wrong_shape", "--levels", "0:1",
                "--level", 0.25) == 2
    assert "returned shape" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(tmp_path / "clean.npy", out, "--family", f"{MODULE}:dim", "--levels", "1-2", "--level", 0.25)
    assert "expected a level range A:B" in capsys.readouterr().err
    assert _cli(tmp_path / "clean.npy", out, "--family", "salt", "--level", 1) == 2
    assert "unknown degradation" in capsys.readouterr().err
