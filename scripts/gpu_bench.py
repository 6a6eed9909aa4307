#!/usr/bin/env python
"""CUDA against CPU, in one run: stage-1 training throughput and 512x512 inference latency of DURR.

Needs torch and the repository's ``durr`` source only (no install, none of the optional
packages)::

    PYTHONPATH=. python scripts/gpu_bench.py [--out results.json] [--quick] [--compile]
                                             [--devices cpu,cuda]

Training: synthetic noisy/clean patches, the DURR restorer unrolled a few steps, MSE on the
last estimate, AdamW. Inference: ``DURR.restore`` with a fixed number of steps on whole slices.
CUDA runs in bf16 autocast (and also fp32 for inference); CPU in fp32; both channels-last.
The model is untrained: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from durr.control.restorer import DURR, DURRConfig  # noqa: E402
from durr.train.device import autocast  # noqa: E402

CHANNELS_LAST = torch.channels_last


@dataclass(frozen=True)
class Plan:
    """What is measured: training cases (batch, patch) and inference grid (steps x batch)."""

    train_cases: tuple[tuple[int, int], ...]
    unroll: int                 # training steps of the dynamic, loss on the last estimate
    pool: int                   # distinct synthetic batches cycled through in training
    infer_size: int
    infer_steps: tuple[int, ...]
    infer_batches: tuple[int, ...]


FULL = Plan(train_cases=((12, 48), (64, 64)), unroll=6, pool=8, infer_size=512,
            infer_steps=(8, 24), infer_batches=(1, 8))
QUICK = Plan(train_cases=((4, 32),), unroll=3, pool=2, infer_size=128, infer_steps=(2, 4), infer_batches=(1, 2))


@dataclass(frozen=True)
class Timing:
    """Repeats: at least ``min_repeats``, then more until ``budget_s`` or ``max_repeats``."""

    warmup: int
    min_repeats: int
    max_repeats: int
    budget_s: float
    inner: int = 1              # calls per timed repeat (amortises the synchronisation)


# (training, inference) per device type; CPU is slow, so few repeats there.
TIMING = {"cuda": (Timing(3, 5, 20, 3.0, inner=10), Timing(5, 10, 50, 1.5)),
          "cpu": (Timing(1, 2, 5, 3.0), Timing(1, 2, 3, 2.0))}
QUICK_TIMING = (Timing(1, 2, 2, 0.0), Timing(1, 2, 2, 0.0))


# -- helpers ---------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision_context(device: torch.device, precision: str):
    """bf16: the project's autocast (``durr.train.device``); fp32: none."""
    return autocast(device) if precision == "bf16" else contextlib.nullcontext()


def time_calls(fn: Callable[[], None], device: torch.device, timing: Timing) -> tuple[float, float]:
    """(median seconds per call after warm-up, seconds the warm-up took, compilation included)."""
    t0 = time.perf_counter()
    for _ in range(timing.warmup):
        fn()
    synchronize(device)
    warmup_s = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < timing.max_repeats and (len(times) < timing.min_repeats
                                               or time.perf_counter() - start < timing.budget_s):
        t = time.perf_counter()
        for _ in range(timing.inner):
            fn()
        synchronize(device)
        times.append((time.perf_counter() - t) / timing.inner)
    return statistics.median(times), warmup_s


def synthetic_pairs(batch: int, size: int, generator: torch.Generator,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random images in [0, 1] + Gaussian noise (sigma 0.02-0.1): (noisy, clean), (B, 1, S, S)."""
    coarse = torch.rand(batch, 1, max(size // 8, 2), max(size // 8, 2), generator=generator)
    clean = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    sigma = 0.02 + 0.08 * torch.rand(batch, 1, 1, 1, generator=generator)
    noisy = clean + sigma * torch.randn(clean.shape, generator=generator)
    return (noisy.to(device).contiguous(memory_format=CHANNELS_LAST),
            clean.to(device).contiguous(memory_format=CHANNELS_LAST))


def make_model(device: torch.device) -> DURR:
    torch.manual_seed(0)
    return DURR(DURRConfig()).to(device).to(memory_format=CHANNELS_LAST)


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# -- training --------------------------------------------------------------------------------

def training_step(model: DURR, opt: torch.optim.Optimizer, pool: list, unroll: int,
                  device: torch.device) -> Callable[[], None]:
    """One stage-1 iteration per call: unroll, MSE at the end, backward, clip, AdamW step."""
    batches = itertools.cycle(pool)

    def step() -> None:
        y, x = next(batches)
        with autocast(device):
            loss = F.mse_loss(model.unroll(y, unroll)[-1], x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def bench_training(device: torch.device, batch: int, patch: int, plan: Plan, timing: Timing,
                   compile: bool) -> dict:
    """Samples/s of stage-1 training for one (batch, patch) case."""
    model = make_model(device).train()
    if compile:
        model.unit.compile()  # as ``Stage1Config.compile`` does
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    pool = [synthetic_pairs(batch, patch, generator, device) for _ in range(plan.pool)]
    reset_peak_memory(device)
    seconds, warmup_s = time_calls(training_step(model, opt, pool, plan.unroll, device), device, timing)
    return {"samples_per_s": batch / seconds, "ms_per_iter": seconds * 1e3, "warmup_s": warmup_s,
            "peak_mem_mb": peak_memory_mb(device)}


def training_rows(device: torch.device, plan: Plan, timing: Timing, compile: bool) -> list[dict]:
    """Eager rows, plus compiled rows when asked; a failed compilation is reported, not fatal."""
    rows = []
    for (batch, patch), compiled in itertools.product(plan.train_cases, (False, True) if compile else (False,)):
        row = {"device": device.type, "batch": batch, "patch": patch, "unroll": plan.unroll,
               "precision": "bf16" if device.type == "cuda" else "fp32", "channels_last": True,
               "compiled": compiled}
        try:
            row.update(bench_training(device, batch, patch, plan, timing, compiled))
        except Exception as error:  # noqa: BLE001 - torch.compile fails in many ways (no compiler, ...)
            if not compiled:
                raise
            row["compile_error"] = f"{type(error).__name__}: {error}"[:1000]
            print(f"  torch.compile failed on {device.type} ({row['compile_error'][:200]}); going on without it",
                  file=sys.stderr)
        finally:
            if compiled:
                torch._dynamo.reset()
        rows.append(row)
        print_progress(row)
    return rows


# -- inference -------------------------------------------------------------------------------

def bench_inference(model: DURR, device: torch.device, size: int, steps: int, batch: int, precision: str,
                    timing: Timing) -> dict:
    """ms per slice of ``model.restore`` (fixed steps) on a (batch, 1, size, size) stack on the device."""
    noisy, _ = synthetic_pairs(batch, size, torch.Generator().manual_seed(2), device)

    def call() -> None:
        with torch.no_grad(), precision_context(device, precision):
            model.restore(noisy, mode="fixed", steps=steps)

    reset_peak_memory(device)
    seconds, _ = time_calls(call, device, timing)
    return {"ms_per_slice": seconds * 1e3 / batch, "ms_per_batch": seconds * 1e3,
            "peak_mem_mb": peak_memory_mb(device)}


def inference_rows(device: torch.device, plan: Plan, timing: Timing) -> list[dict]:
    model = make_model(device).eval()
    precisions = ("fp32", "bf16") if device.type == "cuda" else ("fp32",)
    rows = []
    for steps, batch, precision in itertools.product(plan.infer_steps, plan.infer_batches, precisions):
        row = {"device": device.type, "size": plan.infer_size, "steps": steps, "batch": batch,
               "precision": precision}
        row.update(bench_inference(model, device, plan.infer_size, steps, batch, precision, timing))
        rows.append(row)
        print_progress(row)
    return rows


# -- report ----------------------------------------------------------------------------------

def speedups(rows: list[dict], keys: tuple[str, ...], metric: str, higher_is_faster: bool) -> list[dict]:
    """CUDA over CPU for every CUDA row, against the eager CPU row with the same ``keys``."""
    cpu = {tuple(r[k] for k in keys): r for r in rows
           if r["device"] == "cpu" and metric in r and not r.get("compiled")}
    out = []
    for r in rows:
        base = cpu.get(tuple(r[k] for k in keys))
        if r["device"] != "cuda" or metric not in r or base is None:
            continue
        ratio = r[metric] / base[metric] if higher_is_faster else base[metric] / r[metric]
        out.append({**{k: r[k] for k in keys}, "cuda_precision": r["precision"],
                    "compiled": r.get("compiled", False), "cuda_over_cpu": ratio})
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"name": torch.cuda.get_device_name(device), "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 2**30, 1)}
    return {"name": cpu_name(), "threads": torch.get_num_threads()}


def environment() -> dict:
    return {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "python": platform.python_version(),
            "platform": platform.platform()}


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_progress(row: dict) -> None:
    what = " ".join(f"{k}={row[k]}" for k in ("batch", "patch", "steps", "precision", "compiled") if k in row)
    value = row.get("samples_per_s") or row.get("ms_per_slice")
    print(f"  {row['device']:4s} {what}: {fmt(value, '.2f') if value else row.get('compile_error', '')[:80]}",
          file=sys.stderr)


def print_tables(result: dict) -> None:
    print(f"\ntorch {result['environment']['torch']}; "
          + "; ".join(f"{d}: {i['name']}" for d, i in result["devices"].items()))
    print(f"\nStage-1 training (DURR unrolled {result['plan']['unroll']} steps, AdamW), median over repeats")
    print(f"{'device':6s} {'batch':>5s} {'patch':>5s} {'prec':>5s} {'compiled':>8s} {'samples/s':>10s} "
          f"{'ms/iter':>9s} {'peak MB':>8s}")
    for r in result["train"]:
        print(f"{r['device']:6s} {r['batch']:5d} {r['patch']:5d} {r['precision']:>5s} {str(r['compiled']):>8s} "
              f"{fmt(r.get('samples_per_s'), '10.1f')} {fmt(r.get('ms_per_iter'), '9.2f')} "
              f"{fmt(r.get('peak_mem_mb'), '8.0f')}" + ("  (compile failed)" if "compile_error" in r else ""))
    print(f"\nInference (DURR.restore, fixed steps, {result['plan']['infer_size']}x{result['plan']['infer_size']})")
    print(f"{'device':6s} {'steps':>5s} {'batch':>5s} {'prec':>5s} {'ms/slice':>9s} {'ms/batch':>9s} {'peak MB':>8s}")
    for r in result["infer"]:
        print(f"{r['device']:6s} {r['steps']:5d} {r['batch']:5d} {r['precision']:>5s} {r['ms_per_slice']:9.2f} "
              f"{r['ms_per_batch']:9.2f} {fmt(r['peak_mem_mb'], '8.0f')}")
    if result["speedup"]["train"] or result["speedup"]["infer"]:
        print("\nCUDA speed-up over CPU (CPU: fp32, eager)")
        for s in result["speedup"]["train"]:
            print(f"  train batch {s['batch']} patch {s['patch']} ({s['cuda_precision']}"
                  f"{', compiled' if s['compiled'] else ''}): {s['cuda_over_cpu']:.1f}x")
        for s in result["speedup"]["infer"]:
            print(f"  infer steps {s['steps']} batch {s['batch']} ({s['cuda_precision']}): {s['cuda_over_cpu']:.1f}x")


# -- main ------------------------------------------------------------------------------------

def pick_devices(names: str) -> list[torch.device]:
    devices = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in ("cpu", "cuda"):
            raise SystemExit(f"--devices takes cpu and/or cuda, got {name!r}")
        if name == "cuda" and not torch.cuda.is_available():
            print("no CUDA device: measuring the CPU only", file=sys.stderr)
            continue
        devices.append(torch.device(name))
    return devices


def run(devices: list[torch.device], quick: bool, compile: bool) -> dict:
    plan = QUICK if quick else FULL
    train, infer = [], []
    for device in devices:
        train_timing, infer_timing = QUICK_TIMING if quick else TIMING[device.type]
        print(f"{device.type}: training", file=sys.stderr)
        # compile is a CUDA option (CPU inductor builds C++ for minutes on a small machine)
        train += training_rows(device, plan, train_timing, compile and device.type == "cuda")
        print(f"{device.type}: inference", file=sys.stderr)
        infer += inference_rows(device, plan, infer_timing)
    return {"environment": environment(), "devices": {d.type: device_info(d) for d in devices},
            "quick": quick, "compile": compile, "plan": asdict(plan), "train": train, "infer": infer,
            "speedup": {"train": speedups(train, ("batch", "patch"), "samples_per_s", True),
                        "infer": speedups(infer, ("steps", "batch"), "ms_per_slice", False)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_bench_results.json"), help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and repeats: a smoke test in seconds")
    parser.add_argument("--compile", action="store_true", help="also time training with torch.compile (CUDA)")
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu, cuda (skipped if absent)")
    args = parser.parse_args(argv)
    devices = pick_devices(args.devices)
    if not devices:
        raise SystemExit("nothing to measure")
    result = run(devices, args.quick, args.compile)
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
