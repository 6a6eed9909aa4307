"""Inference: model folders and whole-scan restoration (the one path the CLI and the app share)."""

from durr.infer.model_io import (DEFAULT_MODEL_FOR_MODALITY, load_baseline, load_model, models_root,
                                 resolve_model_dir, save_model)
from durr.infer.restore import RestoreInfo, restore_scan, restore_slices

__all__ = ["load_model", "load_baseline", "save_model", "resolve_model_dir", "models_root",
           "DEFAULT_MODEL_FOR_MODALITY", "restore_scan", "restore_slices", "RestoreInfo"]
