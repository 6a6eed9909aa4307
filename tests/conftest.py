"""Shared test helpers."""

import pytest
import torch

from durr.control import DURR, DURRConfig, UnitConfig


def make_tiny_durr(modality: str, family: str, seed: int = 0, max_steps: int = 40, policy_runs_on: bool = True) -> DURR:
    """A tiny untrained DURR model (4 channels, 3 layers).

    An untrained policy stops wherever its random weights say, possibly at step 0; with
    ``policy_runs_on`` its stop probability is pinned low, so it runs to ``max_steps``.
    """
    torch.manual_seed(seed)
    model = DURR(DURRConfig(modality=modality, family=family, max_steps=max_steps,
                            unit=UnitConfig(channels=4, depth=3)))
    if policy_runs_on:
        with torch.no_grad():
            model.policy.net[-1].weight.zero_()
            model.policy.net[-1].bias.fill_(-4.0)
    return model


@pytest.fixture(scope="session")
def tiny_durr():
    """Factory of tiny untrained models: ``tiny_durr(modality, family, seed=0, max_steps=40)``."""
    return make_tiny_durr


@pytest.fixture
def one_thread():
    """The test machine is shared: one intra-op thread while a test runs, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
