"""Model cards say where each stage ran and how to reproduce it."""

import json
from pathlib import Path

from durr.train.card import write_model_card

ROOT = Path(__file__).resolve().parents[1]


def _config(stage1_device: str | None) -> dict:
    config = json.loads((ROOT / "models" / "gaussian" / "config.json").read_text())
    config["training"].pop("stage1_device", None)
    if stage1_device:
        config["training"]["stage1_device"] = stage1_device
    return config


def test_a_gpu_trained_stage_1_is_named_with_its_device(tmp_path):
    card = write_model_card(tmp_path, _config("cuda (NVIDIA H200)"), "| table |", "- a note").read_text()
    assert "on cuda (NVIDIA H200); stage 2" in card
    assert "scripts/gpu_train_models.sh" in card and "| table |" in card and "- a note" in card


def test_a_cpu_trained_card_keeps_the_cpu_wording(tmp_path):
    card = write_model_card(tmp_path, _config(None), None, None).read_text()
    assert "cuda" not in card and "scripts/gpu_train_models.sh" not in card
    assert "min, stage 2" in card and "durr train all --family gaussian" in card


def test_the_card_names_the_sources_each_stage_trained_on(tmp_path):
    config = _config(None)
    card = write_model_card(tmp_path, config, None, None).read_text()
    assert card.count("every train source above") == 2
    config["recipe"]["stage1"]["sources"] = ["skimage-camera", "skimage-moon"]
    config["recipe"]["stage2"]["sources"] = ["skimage-coins"]
    card = write_model_card(tmp_path, config, None, None).read_text()
    assert "train sources `skimage-camera`, `skimage-moon` only" in card
    assert "train sources `skimage-coins` only" in card and "every train source above" not in card


def test_the_card_states_the_level_scale_only_when_the_model_has_one(tmp_path):
    config = _config(None)
    config["durr"]["noise_ref"] = 0.0344
    assert "above 0.0344, the median" in write_model_card(tmp_path, config, None, None).read_text()
    config["durr"]["noise_ref"] = None
    assert "Level scale" not in write_model_card(tmp_path, config, None, None).read_text()
