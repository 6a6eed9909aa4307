"""``durr demo``'s volume figure: the mean of the per-slice protocol PSNR."""

import numpy as np
import pytest

from durr.commands.demo import mean_slice_psnr
from durr.metrics import score


def test_each_slice_is_scored_on_its_own_window():
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    reference = np.stack([ramp, 100 * ramp])                 # two slices, scales 1 and 100
    restored = reference.copy()
    restored[0, 20:40, 20:40] += 0.01                        # the same relative error in both
    restored[1, 20:40, 20:40] += 1.0
    per_slice = [score(r, ref, "MR")["psnr"] for r, ref in zip(restored, reference)]
    assert per_slice[0] == pytest.approx(per_slice[1], abs=1e-3)
    assert mean_slice_psnr(restored, reference, "MR") == pytest.approx(per_slice[0], abs=1e-3)
    restored[1] = reference[1]                               # a perfect second slice raises the mean
    assert mean_slice_psnr(restored, reference, "MR") > per_slice[0] + 1.0
