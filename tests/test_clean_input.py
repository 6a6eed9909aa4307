"""``python -m durr.bench.clean_input``: a clean scan restored with and without the discrepancy cap."""

import numpy as np
import torch

from durr.bench.clean_input import change_table, main
from durr.infer import save_model


def test_the_cap_limits_the_steps_and_the_change_on_a_clean_scan(tiny_durr, tmp_path, capsys):
    model = tiny_durr("MR", "mr-rician", max_steps=8)
    with torch.no_grad():  # a policy that never says stop: only the cap ends a run early
        model.policy.net[-1].bias.fill_(-10.0)
    model.config.policy.moved_cap = 1e-3          # reached after the first step
    yy, xx = np.mgrid[:40, :40]
    volume = np.stack([100 + 50 * np.sin(xx / 3.0 + z) * np.cos(yy / 4.0) for z in range(2)]).astype(np.float32)
    rows = change_table(model, volume)
    capped, free = rows[2].split("|"), rows[3].split("|")
    assert capped[2].strip() == "1-1" and free[2].strip() == "8-8"
    assert float(capped[3]) <= float(free[3])
    assert 0 < float(capped[5]) <= float(free[5])      # the largest change, in the scan's units
    np.save(tmp_path / "clean.npy", volume)
    save_model(tmp_path / "m", model)
    assert main(["--model", str(tmp_path / "m"), "--scan", str(tmp_path / "clean.npy"), "--threads", "1"]) == 0
    assert "| with the model's cap (0.001) | 1-1 |" in capsys.readouterr().out
