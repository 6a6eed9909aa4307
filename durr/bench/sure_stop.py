"""Where a SURE stop lands against the oracle stop, per level, for a shipped model.

    python -m durr.bench.sure_stop --family F [--model M] [--levels 1 3 5] [--split dev]
                                   [--threads 2] [--max-images N]

For every image of the split at every level (the benchmark's degradation seeds), the model's
trajectory is run to its cap from ``y`` and from ``y + eps b``; the Monte-Carlo SURE of every
step (``durr.control.sure``, noise level by Haar MAD of ``y``) and its protocol PSNR against
the reference are computed. Printed per level: mean step and PSNR of the oracle (best PSNR),
of the SURE minimum, and of the online rule that ``mode="sure"`` uses (stop where SURE first
rises). This is how the SURE stop was checked before it was offered for white Gaussian noise
only: on CT and MR it stops far too early.

``--scales C ...`` adds, per scale ``c``, the PSNR of stopping at ``round(c k)`` where ``k`` is
the first-rise step, and the scale whose mean PSNR over every image and level is highest
(a grid of 1.0 to 3.0 by 0.05). ``--scans-only`` leaves out the stand-in natural images of a
medical group (as stage 2 does); ``--split train --levels`` at seen levels calibrates a scale
without touching the dev split.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def first_rise(risk: np.ndarray) -> int:
    """The step before SURE first rises (the online rule), or the last step."""
    rises = np.nonzero(np.diff(risk) > 0)[0]
    return int(rises[0]) if len(rises) else len(risk) - 1


SCALE_GRID = np.round(np.arange(1.0, 3.0001, 0.05), 2)


def trajectories(model, degraded: np.ndarray):
    """Physical-unit estimates (T+1, H, W) and the SURE of each step (T+1,)."""
    import torch

    from durr.control.features import noise_sigma
    from durr.control.normalize import from_model, robust_scale, to_model
    from durr.control.sure import probe, probe_step, sure_risk

    y_phys = torch.from_numpy(degraded)[None, None]
    scale = robust_scale(y_phys, model.config.modality)
    y = to_model(y_phys, scale)
    sigma = noise_sigma(y)
    eps, b = probe_step(sigma), probe(y)
    with torch.no_grad():
        xs = model.unroll(y, model.config.max_steps)
        probed = model.unroll(y + eps * b, model.config.max_steps)
    risk = np.array([sure_risk(y, x, p, b, eps, sigma).item() for x, p in zip(xs, probed)])
    return from_model(torch.cat(xs), scale, model.config.modality)[:, 0], risk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.sure_stop", description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True)
    parser.add_argument("--model", default=None, help="model name or folder (default: the family's)")
    parser.add_argument("--levels", type=float, nargs="+", default=None,
                        help="levels (default: the benchmark's for the family)")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--scales", type=float, nargs="*", default=[],
                        help="also score stopping at round(c k), k the first-rise step, for each c")
    parser.add_argument("--scans-only", action="store_true",
                        help="leave out the stand-in natural images of a medical group")
    args = parser.parse_args(argv)
    import torch

    from durr.bench import benchmark as bench
    from durr.control.sure import scaled_step
    from durr.data.corpus import load_split
    from durr.data.sources import GROUP_OF_FAMILY, is_stand_in
    from durr.degrade import get_degradation
    from durr.infer import load_model, resolve_model_dir
    from durr.train.heldout import psnr_per_step

    torch.set_num_threads(args.threads)
    degradation = get_degradation(args.family)
    model = load_model(resolve_model_dir(args.model or args.family)).eval()
    model.to(memory_format=torch.channels_last)
    images = bench.images_from_slices(load_split(GROUP_OF_FAMILY[args.family], args.split))
    if args.scans_only:
        images = [im for im in images if not is_stand_in(im.source_id)]
    images = bench.select_images(images, args.max_images)
    levels = bench.parse_levels(args.levels, args.family, degradation)
    print(f"# SURE stop vs oracle stop: {args.family}, {args.split} split, {len(images)} images, "
          f"cap {model.config.max_steps} steps\n")
    scale_cols = "".join(f" {c:g} x first-rise dB |" for c in args.scales)
    print("| level | oracle steps | oracle dB | SURE-min steps | SURE-min dB | first-rise steps | first-rise dB "
          f"| first-rise gap dB |{scale_cols}")
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(args.scales))
    grid_psnr = []  # per image and level: PSNR at every scale of SCALE_GRID
    for level in levels:
        rows, scaled = [], []
        for im in images:
            noisy, reference = bench.degrade_image(degradation, im, level, bench.level_seed(args.family, args.split,
                                                                                             im, level))
            estimates, risk = trajectories(model, noisy)
            psnr = psnr_per_step(estimates, reference, model.config.modality)
            picks = (int(psnr.argmax()), int(risk.argmin()), first_rise(risk))
            rows.append([v for k in picks for v in (k, psnr[k])])
            last = len(psnr) - 1
            scaled.append([psnr[scaled_step(picks[2], c, last)] for c in args.scales])
            grid_psnr.append([psnr[scaled_step(picks[2], c, last)] for c in SCALE_GRID])
        m = np.mean(rows, axis=0)
        cells = "".join(f" {v:.2f} |" for v in np.mean(scaled, axis=0)) if args.scales else ""
        print(f"| {level:g} | {m[0]:.1f} | {m[1]:.2f} | {m[2]:.1f} | {m[3]:.2f} | {m[4]:.1f} | {m[5]:.2f} | "
              f"{m[1] - m[5]:.2f} |{cells}", flush=True)
    mean_by_scale = np.mean(grid_psnr, axis=0)
    best = int(np.argmax(mean_by_scale))
    print(f"\nBest scale of the first-rise step over these images and levels: {SCALE_GRID[best]:g} "
          f"(mean {mean_by_scale[best]:.2f} dB; 1.0: {mean_by_scale[0]:.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
