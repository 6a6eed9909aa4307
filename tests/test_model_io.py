"""Model folders: round trip, and clear errors for corrupt or mismatched weights."""

import json

import pytest
import torch

from durr.control import DURR, DURRConfig, FixedDepthCNN, UnitConfig
from durr.errors import ModelError
from durr.infer import load_baseline, load_model, save_model


def make_folder(tmp_path, channels=8):
    torch.manual_seed(0)
    model = DURR(DURRConfig(modality="CT", family="ct-lowdose", unit=UnitConfig(channels=channels, depth=3)))
    return save_model(tmp_path / "m", model, FixedDepthCNN(), extra_config={"fixed_steps": 3}), model


def test_round_trip(tmp_path):
    folder, model = make_folder(tmp_path)
    loaded = load_model(folder)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert loaded.config.modality == "CT" and load_baseline(folder) is not None
    assert json.loads((folder / "config.json").read_text())["fixed_steps"] == 3


def test_corrupt_weights_give_a_clear_error(tmp_path):
    folder, _ = make_folder(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="model.safetensors: corrupt or not a safetensors file"):
        load_model(folder)


def test_weights_of_another_architecture_give_a_clear_error(tmp_path):
    folder, _ = make_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["durr"]["unit"]["channels"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="do not fit this architecture"):
        load_model(folder)


def test_missing_model_lists_the_available_ones(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        load_model(tmp_path / "nowhere")


def test_pickle_checkpoints_are_refused(tmp_path):
    from durr.train.checkpoint import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ModelError, match="not a readable DURR checkpoint"):
        load_checkpoint(path)
