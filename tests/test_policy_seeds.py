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
