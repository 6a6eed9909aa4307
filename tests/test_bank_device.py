"""The degradation bank on another device: same draws as on the CPU, CPU fallback on failure."""

import numpy as np
import pytest
import torch

from durr.degrade import get_degradation
from durr.train.bank import build_bank


class _CPUOnly(type(get_degradation("gaussian"))):
    """Gaussian noise that refuses to run anywhere but on the CPU (as a CUDA kernel failure would)."""

    def degrade(self, clean, levels, generator, spacing_mm):
        if clean.device.type != "cpu":
            raise RuntimeError("no kernel for this device")
        return super().degrade(clean, levels, generator, spacing_mm)


def _images():
    rng = np.random.default_rng(0)
    return [rng.random((24, 24), dtype=np.float32) for _ in range(3)], [0.7, 0.7, 0.7]


def test_bank_falls_back_to_cpu_with_a_warning_and_the_same_draws(tmp_path):
    images, spacings = _images()
    on_cpu = build_bank(images, spacings, _CPUOnly(), 2, seed=3, progress=False)
    with pytest.warns(UserWarning, match="building it on the CPU"):
        fallback = build_bank(images, spacings, _CPUOnly(), 2, seed=3, cache=tmp_path / "bank.pt",
                              progress=False, device="meta")
    assert torch.equal(on_cpu[2], fallback[2])
    for a, b in zip(on_cpu[0] + on_cpu[1], fallback[0] + fallback[1]):
        assert a.device.type == "cpu" and torch.equal(a, b)
    cached = build_bank(images, spacings, _CPUOnly(), 2, seed=3, cache=tmp_path / "bank.pt", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(cached[0], fallback[0]))
