"""The probe behind the level scale: a restorer's oracle stop when its input runs at a fixed scale.

For each scale ``a`` the restorer runs ``F(a x, a y) / a`` (the dynamic of the scaled input, scaled
back; ``durr.control.level_scale``) on the benchmark's test images, and the table gives the oracle
stop's PSNR (dB) / step per level (same images, noise seeds and metric as ``durr benchmark``), with
a last row for the model's own rule ``a = min(1, noise_ref / sigma_y)`` when it has one::

    python -m durr.bench.level_scale --family mr-rician --model models/mr-rician --scales 1,0.7,0.5,0.35
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from durr.bench import benchmark as bench
from durr.bench.policy_seeds import score_row, scored_trajectories
from durr.data.corpus import DEFAULT_CORPUS
from durr.infer.model_io import load_model


class ScaledUnit(nn.Module):
    """``F(a x, a y) / a`` for a fixed scale ``a``: (B, 1, H, W) x2 -> (B, 1, H, W)."""

    def __init__(self, unit: nn.Module, scale: float):
        super().__init__()
        self.unit, self.scale = unit, float(scale)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.unit(self.scale * x, self.scale * y) / self.scale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True)
    parser.add_argument("--model", required=True, help="model folder or name")
    parser.add_argument("--scales", default="1,0.7,0.5,0.35", help="comma-separated factors in (0, 1]")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--levels", default="seen,unseen")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    scales = [float(v) for v in args.scales.split(",") if v.strip()]
    if not scales or any(not 0 < a <= 1 for a in scales):
        parser.error(f"--scales must be factors in (0, 1], got {args.scales!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    unit, rule = model.unit, model.config.noise_ref
    max_images = bench.DEFAULT_MAX_IMAGES.get(args.family) if args.max_images is None else args.max_images
    runs = [(f"a = {a:g}", None, unit if a == 1 else ScaledUnit(unit, a)) for a in scales]
    if rule is not None:
        runs.append((f"the model's rule (noise_ref {rule:g})", rule, unit))
    for n, (label, noise_ref, run_unit) in enumerate(runs):
        model.unit, model.config.noise_ref = run_unit, noise_ref
        _, psnr, levels = scored_trajectories(model, args.family, args.split, max_images, args.levels, args.corpus)
        if n == 0:
            print("| oracle stop, input scale | " + " | ".join(f"{v:g}" for v in dict.fromkeys(levels)) + " |")
            print("|---|" + "---|" * len(dict.fromkeys(levels)))
        print(score_row(label, psnr.argmax(1), psnr, levels), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
