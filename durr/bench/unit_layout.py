"""Speed of the restoration unit with its weights in the default (NCHW) or channels-last layout.

    python -m durr.bench.unit_layout [--threads 2] [--repeats 20] [--size 512] [--batch 1 8]

Times one step of the default unit (16 channels, depth 5) on random input, the two layouts
interleaved run by run so that a busy machine slows both alike; prints the median seconds
per step, their ratio and the largest difference between the two outputs. A third row times
one stage-1 style training iteration (8 unrolled steps, backward and Adam) on a batch of 32
crops of 64x64.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _interleaved(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up: oneDNN builds its kernels on the first call
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.unit_layout", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args(argv)
    import torch

    from durr.control.unit import RestorationUnit

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    units = {"channels-last": RestorationUnit(), "NCHW": RestorationUnit()}
    units["NCHW"].load_state_dict(units["channels-last"].state_dict())
    units["NCHW"].net.to(memory_format=torch.contiguous_format)
    print(f"# restoration unit layout ({torch.__version__}, {args.threads} threads, median of {args.repeats})\n")
    print("| workload | NCHW s | channels-last s | speed-up | max abs difference |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        y = torch.randn(batch, 1, args.size, args.size)
        with torch.inference_mode():
            med = _interleaved({k: (lambda u=u: u(y, y)) for k, u in units.items()}, args.repeats)
            diff = (units["NCHW"](y, y) - units["channels-last"](y, y)).abs().max().item()
        print(f"| one step, {batch} x {args.size}x{args.size} | {med['NCHW']:.4f} | {med['channels-last']:.4f} | "
              f"{med['NCHW'] / med['channels-last']:.2f}x | {diff:.1e} |", flush=True)

    crops = torch.randn(32, 1, 64, 64)

    def train_iteration(unit):
        opt = torch.optim.Adam(unit.parameters(), 1e-4)

        def run():
            x = crops
            for _ in range(8):
                x = x + unit(x, crops)
            opt.zero_grad()
            x.pow(2).mean().backward()
            opt.step()
        return run

    med = _interleaved({k: train_iteration(u) for k, u in units.items()}, max(3, args.repeats // 4))
    print(f"| training iteration, 32 x 64x64, 8 steps | {med['NCHW']:.4f} | {med['channels-last']:.4f} | "
          f"{med['NCHW'] / med['channels-last']:.2f}x | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
