"""Device choice: CUDA (with bf16 autocast) when present, else CPU."""

from __future__ import annotations

import contextlib
import platform

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU raises a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU (bf16 is no faster there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: torch.device) -> str:
    """Where training ran, for model cards: 'cuda (NVIDIA H200)' or 'cpu (x86_64, 2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"
