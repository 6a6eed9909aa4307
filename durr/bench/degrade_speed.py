"""Speed of the degradations: seconds per 512 x 512 slice (medians), and scikit-image for scale.

    python -m durr.bench.degrade_speed [--size 512] [--threads 2] [--repeats 5] [--device cpu]
                                       [--skimage-repeats 3] [--no-skimage]

Prints, for ``ct-lowdose`` (720 views, Poisson, FBP of the noisy and the noise-free sinogram):
the one-off build of the projection matrices, then the median wall-clock and CPU seconds per
slice at batch 1 and batch 4; the same for ``gaussian`` and ``mr-rician``; and scikit-image's
``radon`` + ``iradon`` (ramp, linear, circle=False as ct-lowdose, 720 views) on one slice, which is what one
CT degradation would cost with it (twice that for the noisy and the reference FBP). The
machine's load average is printed too: on a shared CPU the figures move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch


def phantom_hu(size: int) -> np.ndarray:
    """A body-like HU slice (size, size): air, a soft-tissue ellipse, fat, bone, lungs."""
    yy, xx = (np.mgrid[:size, :size] - size / 2) / (size / 2)
    hu = np.full((size, size), -1000.0, np.float32)
    body = (xx / 0.85) ** 2 + (yy / 0.62) ** 2 <= 1
    hu[body] = 40.0
    hu[body & ((xx / 0.8) ** 2 + (yy / 0.57) ** 2 > 1)] = -100.0                      # fat rim
    for cx in (-0.38, 0.38):
        hu[((xx - cx) / 0.28) ** 2 + (yy / 0.36) ** 2 <= 1] = -800.0                   # lungs
    hu[(xx**2 + (yy - 0.38) ** 2) <= 0.09**2] = 900.0                                   # vertebra
    rng = np.random.default_rng(0)
    hu[body] += rng.normal(0, 10, int(body.sum())).astype(np.float32)                 # texture
    return hu


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median CPU (process) seconds of ``fn()``."""
    wall, cpu = [], []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.degrade_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skimage-repeats", type=int, default=3)
    parser.add_argument("--no-skimage", action="store_true")
    args = parser.parse_args(argv)

    from durr.degrade import get_degradation
    from durr.degrade.radon import prepare

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = args.size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"# degrade speed, {size}x{size}, {where}, torch {torch.__version__}, load average {load:.1f}")

    ct = get_degradation("ct-lowdose")
    start = time.perf_counter()
    prepare(size, size, ct.n_views, circle=ct.circle, device=device)
    print(f"ct-lowdose  one-off build of the projection matrices: {time.perf_counter() - start:.2f} s")

    hu = torch.from_numpy(phantom_hu(size)).to(device)
    for name, image, level in (("ct-lowdose", hu, 0.1), ("mr-rician", (hu + 1000).clamp_min(0), 5.0),
                               ("gaussian", ((hu + 1000) / 2000).clamp(0, 1), 25.0)):
        deg = get_degradation(name)
        for batch in (1, 4):
            x = image.expand(batch, 1, size, size).contiguous()
            generator = torch.Generator().manual_seed(0)
            deg(x, level, generator=generator)                          # warm-up
            wall, cpu = _median_seconds(lambda: deg(x, level, generator=generator), args.repeats)
            print(f"{name:<11} batch {batch}: {wall / batch:.3f} s per slice wall, {cpu / batch:.3f} s CPU "
                  f"(medians of {args.repeats})")

    if not args.no_skimage:
        from skimage.transform import iradon, radon

        mu = np.clip(0.0192 * (1 + phantom_hu(size).astype(np.float64) / 1000), 0, None) * 0.7
        theta = np.arange(ct.n_views) * 180.0 / ct.n_views

        def sk():
            sino = radon(mu, theta, circle=ct.circle)
            iradon(sino, theta, filter_name="ramp", interpolation="linear", circle=ct.circle)

        wall, cpu = _median_seconds(sk, args.skimage_repeats)
        print(f"scikit-image radon + iradon (one FBP), {ct.n_views} views: {wall:.2f} s per slice wall, "
              f"{cpu:.2f} s CPU (medians of {args.skimage_repeats}); a ct-lowdose pair needs one more iradon")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
