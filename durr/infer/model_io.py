"""Model folders: ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md`` (+ the baseline).

Weights are safetensors (no pickle is ever loaded). A folder is found by name under the
project's ``models/`` (or ``$DURR_MODELS``) or given as a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from durr.control.baseline import FixedCNNConfig, FixedDepthCNN
from durr.control.restorer import DURR, DURRConfig
from durr.errors import ModelError

WEIGHTS, CONFIG, CARD, BASELINE = "model.safetensors", "config.json", "MODEL_CARD.md", "fixed_cnn.safetensors"
# Which shipped model serves which modality by default.
DEFAULT_MODEL_FOR_MODALITY = {"CT": "ct-lowdose", "MR": "mr-rician", "OT": "gaussian"}


def models_root() -> Path:
    """``$DURR_MODELS`` or the ``models/`` folder of the source checkout."""
    env = os.environ.get("DURR_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


def resolve_model_dir(name_or_dir: str | os.PathLike) -> Path:
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    candidate = models_root() / str(name_or_dir)
    if candidate.is_dir():
        return candidate
    available = sorted(p.name for p in models_root().glob("*") if (p / CONFIG).exists())
    raise ModelError(f"{name_or_dir}: no such model folder; available models: {', '.join(available) or 'none'}")


def _save_atomic(tensors: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_model(folder: str | os.PathLike, model: DURR, baseline: FixedDepthCNN | None = None,
               extra_config: dict | None = None) -> Path:
    """Write a model folder (weights, config, and the baseline's weights if given)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic(model.state_dict(), folder / WEIGHTS)
    config = {"durr": model.config.to_dict(), **(extra_config or {})}
    if baseline is not None:
        _save_atomic(baseline.state_dict(), folder / BASELINE)
        config["fixed_cnn"] = baseline.config.to_dict()
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, folder / CONFIG)
    return folder


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder}: not a model folder (no {CONFIG})") from None
    except json.JSONDecodeError as err:
        raise ModelError(f"{folder / CONFIG}: not valid JSON ({err})") from None


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise ModelError(f"{path}: missing weights file") from None
    except Exception as err:
        raise ModelError(f"{path}: corrupt or not a safetensors file ({err})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit this architecture ({first})") from None


def load_model(name_or_dir: str | os.PathLike) -> DURR:
    """The DURR model (unit + rule + policy) of a model folder, in eval mode on the CPU."""
    folder = resolve_model_dir(name_or_dir)
    config = read_config(folder)
    if "durr" not in config:
        raise ModelError(f"{folder / CONFIG}: no 'durr' section; was it written by durr.infer.save_model?")
    try:
        model = DURR(DURRConfig.from_dict(config["durr"]))
    except (TypeError, ValueError) as err:
        raise ModelError(f"{folder / CONFIG}: invalid model configuration ({err})") from None
    _load_weights(model, folder / WEIGHTS)
    return model.eval()


def load_baseline(name_or_dir: str | os.PathLike) -> FixedDepthCNN | None:
    """The fixed-depth CNN trained beside the model, or None if the folder has none."""
    folder = resolve_model_dir(name_or_dir)
    config = read_config(folder)
    if "fixed_cnn" not in config or not (folder / BASELINE).exists():
        return None
    model = FixedDepthCNN(FixedCNNConfig(**config["fixed_cnn"]))
    _load_weights(model, folder / BASELINE)
    return model.eval()
