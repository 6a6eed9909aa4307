"""``python -m durr.bench.policy_seeds``: one policy per seed on cached rollouts, scored per level."""

import pytest
import torch

from durr.bench.policy_seeds import main
from durr.control.features import NUM_FEATURES
from durr.infer.model_io import save_model
from durr.train.stage2 import restorer_fingerprint
from test_benchmark import smooth_image, tiny_model, write_corpus


def _cells(line):
    return [tuple(float(v) for v in c.split(" / ")) for c in line.strip("| ").split(" | ")[1:]]


def test_seeds_are_scored_against_the_oracle_and_other_restorers_rollouts_are_refused(tmp_path, capsys, one_thread):
    write_corpus(tmp_path / "corpus", "natural", {"dev": [smooth_image(i) for i in (0, 1)]})
    model = tiny_model()
    save_model(tmp_path / "model", model)
    g = torch.Generator().manual_seed(0)
    bank = {"features": torch.randn(16, 4, NUM_FEATURES, generator=g), "psnr": torch.rand(16, 4, generator=g).double(),
            "levels": torch.full((16,), 20.0, dtype=torch.float64), "restorer": restorer_fingerprint(model)}
    torch.save(bank, tmp_path / "rollouts.pt")
    args = ["--family", "gaussian", "--model", str(tmp_path / "model"), "--rollouts", str(tmp_path / "rollouts.pt"),
            "--corpus", str(tmp_path / "corpus"), "--levels", "20,45", "--seeds", "2", "--iterations", "50"]
    assert main(args) == 0
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| seed 0", "| seed 1", "| mean of the seeds' stop probabilities",
                                                     "| oracle"]
    oracle = _cells(rows[-1])
    for row in rows[1:-1]:
        for (psnr, steps), (best, _) in zip(_cells(row), oracle):
            assert psnr <= best + 1e-9 and 0 <= steps <= model.config.max_steps

    def one_extra_row(option: str, label: str) -> None:
        assert main(args + [option, "--seeds", "1"]) == 0
        rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| ")]
        extra = [r for r in rows if label in r]
        assert len(extra) == 1
        for (psnr, steps), (best, _) in zip(_cells(extra[0]), oracle):
            assert psnr <= best + 1e-9 and 0 <= steps <= model.config.max_steps

    one_extra_row("--knee-guard", "+ knee guard")
    # the recipe's wrappers, refitted per seed on the same rollouts
    save_model(tmp_path / "model", model, extra_config={"recipe": {"stage2": {"step_ceiling": True, "moved_cap": True}}})
    one_extra_row("--wrappers", "+ the recipe's wrappers (step_ceiling, moved_cap)")

    torch.save({**bank, "restorer": "another"}, tmp_path / "rollouts.pt")
    with pytest.raises(SystemExit):
        main(args)


def _thresholded_heat_flow(threshold: float, gain: float = 0.5):
    """A DURR whose unit is F(x, y) = gain * soft-threshold(blur(x) - x): it denoises, and its
    threshold (a bias) makes it depend on the input's scale, as a trained unit does."""
    from durr.control.restorer import DURR, DURRConfig
    from durr.control.unit import UnitConfig

    model = DURR(DURRConfig(modality="OT", family="gaussian", max_steps=8, unit=UnitConfig(channels=2, depth=2)))
    laplace = torch.full((3, 3), 1 / 9)
    laplace[1, 1] -= 1.0
    first, last = model.unit.net[0], model.unit.net[-1]
    with torch.no_grad():
        first.weight.zero_()
        first.weight[0, 0], first.weight[1, 0] = laplace, -laplace
        first.bias.fill_(-threshold)
        last.weight.zero_()
        last.weight[0, 0, 1, 1], last.weight[0, 1, 1, 1] = gain, -gain
        last.bias.zero_()
    return model


def test_the_level_scale_probe_scores_each_fixed_scale_and_the_models_rule(tmp_path, capsys, one_thread):
    from durr.bench.level_scale import main as probe

    write_corpus(tmp_path / "corpus", "natural", {"dev": [smooth_image(i) for i in (0, 1)]})
    model = _thresholded_heat_flow(threshold=0.05)
    model.config.noise_ref = 0.05
    save_model(tmp_path / "model", model)
    args = ["--family", "gaussian", "--model", str(tmp_path / "model"), "--corpus", str(tmp_path / "corpus"),
            "--levels", "20,65", "--scales", "1,0.5"]
    assert probe(args) == 0
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| a = 1", "| a = 0.5", "| the model's rule (noise_ref 0.05)"]
    unscaled, halved, rule = (_cells(r) for r in rows[1:])
    assert unscaled != halved and all(0 <= steps <= model.config.max_steps for _, steps in unscaled + halved + rule)
    with pytest.raises(SystemExit):
        probe(args[:-1] + ["1.5"])
