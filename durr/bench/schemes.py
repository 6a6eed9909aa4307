"""Benchmarks of the scheme library: convergence orders, RevNet memory, PDE-Net, DURR per step rule.

    python -m durr.bench.schemes [--parts convergence revnet restorer] [--iterations 200]
                                 [--family mr-rician] [--threads 1] [--json out.json]
    python -m durr.bench.schemes --parts pdenet [--quick]

Parts:

``convergence``
    Global error at ``T = 1`` of every step rule on ``x' = A x`` (``f = h A x``, 2x2 ``A`` with
    a damped rotation), ``N = 16 ... 128`` steps, and the fitted log-log slope (the test asserts
    these slopes; this prints them).
``revnet``
    A deep RevNet classifier backbone (32 channels, 32x32 inputs, batch 8), memory-saving
    backward vs stored activations: bytes autograd keeps for backward (saved-tensor hooks), the
    peak of live CPU tensor memory during forward + backward (allocation events of
    ``torch.profiler``), time per forward + backward, and the largest gradient difference.
``pdenet``
    Moment-constrained 5x5 ``d/dx`` (2nd-order accuracy, random free moments): error decay.
    The convection-diffusion task of :mod:`durr.schemes.pde.fit`: coefficient recovery with
    noise-free data and with 1% noise, rollout error over 4x the training horizon. The PDE-Net
    2.0 SymNet block on a viscous Burgers law: the recovered expression.
``restorer``
    The DURR restorer (``durr.control``) trained with stage 1 under the same iteration budget for
    each step rule (Euler, LM, RK2, PolyNet) and for the PDE-Net unit (Euler), evaluated on the
    dev split at one seen and one unseen level with the best step chosen per image with the
    clean image ("oracle" stop: the stopping policy is not part of this comparison). Prints
    PSNR, the mean best step, the time per step, and the learned LM coefficients ``k_n``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time

import numpy as np
import torch

PARTS = ("convergence", "revnet", "pdenet", "restorer")


# -- convergence orders ---------------------------------------------------------------------------
def convergence_table(steps=(16, 32, 64, 128)) -> list[dict]:
    """Errors and log-log slopes of every rule on ``x' = A x`` (see the module doc)."""
    from durr.schemes import make_rule

    a = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=torch.float64)
    x0 = torch.tensor([1.0, 0.5], dtype=torch.float64).reshape(1, 2, 1, 1)
    cases = [("euler", {}, 0.0), ("rk2", {}, 0.0), ("rk2", {"variant": "midpoint"}, 0.0), ("polynet", {}, 0.0),
             ("revnet", {}, 0.0), ("revnet", {"aux_init": "half"}, 0.0),
             ("lm", {"k_init": -0.05, "learn_k": False}, -0.05), ("lm", {"k_init": -0.5, "learn_k": False}, -0.5),
             ("lm", {"k_init": 0.3, "learn_k": False}, 0.3)]
    rows = []
    for name, kwargs, k in cases:
        errors = []
        for n in steps:
            rule = make_rule(name, max_steps=n, **kwargs)
            h = 1.0 / n
            x = rule.rollout(lambda z: h * torch.einsum("ij,bjhw->bihw", a, z), x0, n)
            exact = (torch.linalg.matrix_exp(a / (1 + k)) @ x0.reshape(2)).reshape(1, 2, 1, 1)
            errors.append(float((x - exact).norm()))
        slope = float(np.polyfit(np.log(1.0 / np.array(steps)), np.log(errors), 1)[0])
        label = name + "".join(f" {v}={w}" for v, w in kwargs.items() if v != "learn_k")
        rows.append({"rule": label, "order": rule.order, "errors": errors, "slope": slope})
    return rows


def print_convergence(rows, steps=(16, 32, 64, 128)) -> None:
    print("\n## Convergence order on x' = A x (global error at T=1; LM vs (1+k) x' = A x)\n")
    print(f"| rule | order | " + " | ".join(f"N={n}" for n in steps) + " | slope |")
    print("|---|---|" + "---|" * len(steps) + "---|")
    for r in rows:
        print(f"| {r['rule']} | {r['order']} | " + " | ".join(f"{e:.2e}" for e in r["errors"])
              + f" | {r['slope']:.3f} |")


# -- RevNet memory --------------------------------------------------------------------------------
def revnet_table(depths=(8, 32), channels=32, size=32, batch=8, repeats=3) -> list[dict]:
    """Memory-saving vs stored-activation RevNet backward (see the module doc)."""
    from durr.schemes import build_backbone, peak_memory_bytes, saved_tensor_bytes

    rows = []
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    for depth in depths:
        torch.manual_seed(0)
        net = build_backbone("revnet", channels=channels, depth=depth, num_classes=10)
        ref = copy.deepcopy(net)
        ref.branches.memory_saving = False
        grads, row = [], {"depth": depth}
        for label, model in (("saving", net), ("stored", ref)):
            model.zero_grad()
            model(x).square().mean().backward()
            grads.append([p.grad.clone() for p in model.parameters()])
            row[f"saved_bytes_{label}"] = saved_tensor_bytes(lambda m=model: m(x), list(model.parameters()))
            row[f"peak_bytes_{label}"] = peak_memory_bytes(lambda m=model: m(x).square().mean().backward())
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                model(x).square().mean().backward()
                times.append(time.perf_counter() - t)
            row[f"seconds_{label}"] = float(np.median(times))
        row["max_grad_diff"] = max(float((a - b).abs().max()) for a, b in zip(*grads))
        with torch.no_grad():
            z = net.stem(x)
            row["inverse_error"] = float((net.branches.inverse(net.branches(z)) - z).abs().max())
        rows.append(row)
    return rows


def print_revnet(rows, channels=32, size=32, batch=8) -> None:
    print(f"\n## RevNet: memory-saving backward vs stored activations ({channels} ch, {size}x{size}, batch {batch})\n")
    print("| depth | saved for backward (saving / stored) | peak live memory (saving / stored) "
          "| fwd+bwd s (saving / stored) | max grad diff | inverse error |")
    print("|---|---|---|---|---|---|")
    mb = 1 / 2**20
    for r in rows:
        print(f"| {r['depth']} | {r['saved_bytes_saving'] * mb:.2f} / {r['saved_bytes_stored'] * mb:.2f} MiB "
              f"| {r['peak_bytes_saving'] * mb:.2f} / {r['peak_bytes_stored'] * mb:.2f} MiB "
              f"| {r['seconds_saving']:.3f} / {r['seconds_stored']:.3f} | {r['max_grad_diff']:.1e} "
              f"| {r['inverse_error']:.1e} |")


# -- PDE-Net --------------------------------------------------------------------------------------
def pdenet_report(quick: bool = False) -> dict:
    """Filter accuracy, coefficient recovery (0% and 1% noise), rollout, SymNet (see module doc)."""
    from durr.schemes.pde import MomentBank
    from durr.schemes.pde.fit import ConvectionDiffusionTask, fit_delta_t, fit_symnet_burgers, make_data
    from durr.schemes.pde.simulate import periodic_grid

    out: dict = {}
    bank = MomentBank([(1, 0)], kernel_size=5, accuracy=2, learnable=False)
    bank.free.copy_(torch.randn(bank.free.shape, generator=torch.Generator().manual_seed(1), dtype=bank.free.dtype))
    sizes, errors = [32, 64, 128, 256], []
    for n in sizes:
        x, y = periodic_grid(n)
        u = torch.sin(x + 0.5) * torch.cos(2 * y) + 0.3 * torch.cos(3 * x - y)
        du = torch.cos(x + 0.5) * torch.cos(2 * y) - 0.9 * torch.sin(3 * x - y)
        approx = torch.nn.functional.conv2d(torch.nn.functional.pad(u[None, None], (2, 2, 2, 2), mode="circular"),
                                            bank.kernels()[:, None]) / (2 * math.pi / n)
        errors.append(float((approx[0, 0] - du).abs().max()))
    out["dx_filter"] = {"n": sizes, "max_error": errors,
                        "slope": float(np.polyfit(np.log([2 * math.pi / n for n in sizes]), np.log(errors), 1)[0])}
    iters = (40, 60, 150) if quick else (60, 200, 400)
    for noise, traj_iters in ((0.0, iters[1]), (0.01, iters[2])):
        task = ConvectionDiffusionTask(noise=noise)
        _, res = fit_delta_t(task, make_data(task), one_step_iterations=iters[0], trajectory_iterations=traj_iters)
        out[f"noise_{noise:g}"] = res
    _, sym = fit_symnet_burgers(iterations=60 if quick else 150)
    out["symnet_burgers"] = sym
    return out


def print_pdenet(out: dict) -> None:
    f = out["dx_filter"]
    print("\n## PDE-Net: moment-constrained 5x5 d/dx, 2nd-order accuracy, random free moments\n")
    print("| n | " + " | ".join(str(n) for n in f["n"]) + " | slope |")
    print("|---|" + "---|" * len(f["n"]) + "---|")
    print("| max error | " + " | ".join(f"{e:.2e}" for e in f["max_error"]) + f" | {f['slope']:.3f} |")
    print("\n## PDE-Net delta-t block: 2D convection-diffusion, variable coefficients\n")
    print("u_t = a(x,y) u_x + b(x,y) u_y + 0.15 (u_xx + u_yy); a = 0.8 + 0.4 sin x cos y, "
          "b = -0.5 + 0.3 cos x + 0.2 sin y; 32x32 grid (solver 64x64), dt = 0.02, "
          "training horizon 10 blocks, rollout 40 blocks on 4 new initial conditions.\n")
    print("| data | rel. err a (u_x) | b (u_y) | nu_xx | nu_yy | absent u, u_xy (/ ||nu||) "
          "| rollout err at T | at 4T | stable | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, label in (("noise_0", "noise-free"), ("noise_0.01", "1% noise")):
        r = out[key]
        c, s = r["coefficient_rel_error"], r["absent_terms_rel_to_nu"]
        print(f"| {label} | {c['u_x']:.2%} | {c['u_y']:.2%} | {c['u_xx']:.2%} | {c['u_yy']:.2%} "
              f"| {s['u']:.2%}, {s['u_xy']:.2%} | {r['rollout_error_at_T']:.2e} | {r['rollout_error_at_4T']:.2e} "
              f"| {r['rollout_stable']} | {r['fit_seconds']:.0f} |")
    sym = out["symnet_burgers"]
    print("\n## PDE-Net 2.0 SymNet block on u_t = -u u_x - u u_y + 0.15 (u_xx + u_yy)\n")
    print(f"recovered: u_t = {sym['expression']}  (fit {sym['fit_seconds']:.0f} s)")


# -- DURR restorer per step rule --------------------------------------------------------------------
RESTORER_VARIANTS = (("Euler", "euler", "cnn"), ("LM", "lm", "cnn"), ("RK2", "rk2", "cnn"),
                     ("PolyNet", "polynet", "cnn"), ("PDE-Net unit", "euler", "pde"))


def _needs_control() -> str | None:
    try:
        from durr.control.unit import RestorationUnit  # noqa: F401
        from durr.control.restorer import DURR  # noqa: F401
        from durr.train.stage1 import train_stage1  # noqa: F401
    except ImportError as err:
        return f"needs durr.control (the DURR restorer): {err}"
    return None


def restorer_table(family: str = "mr-rician", iterations: int = 200, batch: int = 8, patch: int = 48,
                   seen_level: float | None = None, unseen_level: float | None = None, max_steps: int = 24,
                   variants=RESTORER_VARIANTS, seed: int = 0, progress: bool = False) -> dict:
    """Train and evaluate the DURR restorer per step rule (see the module doc)."""
    from durr.control.normalize import from_model, robust_scale, to_model
    from durr.control.restorer import DURR, DURRConfig
    from durr.data.corpus import load_split
    from durr.data.sampling import PairSampler
    from durr.data.sources import GROUP_OF_FAMILY
    from durr.degrade import get_degradation
    from durr.metrics import score
    from durr.schemes.pde import PDERestorationUnit
    from durr.train.stage1 import Stage1Config, train_stage1

    deg = get_degradation(family)
    group = GROUP_OF_FAMILY[family]
    seen_level = deg.seen[1] if seen_level is None else seen_level
    unseen_level = deg.unseen[len(deg.unseen) // 2] if unseen_level is None else unseen_level
    train = load_split(group, "train")
    keep = [i for i, im in enumerate(train.images) if min(im.shape) >= patch]
    sampler = PairSampler([train.images[i] for i in keep], deg, deg.modality, patch=patch,
                          spacings=[train.spacings[i] for i in keep])
    dev = load_split(group, "dev")
    # the dev set degraded once per level, with one generator: every variant sees the same pairs
    pairs = {}
    for level in (seen_level, unseen_level):
        g = torch.Generator().manual_seed(1000 + seed)
        pairs[level] = [deg(torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32))[None, None], level,
                            generator=g, spacing_mm=sp) for im, sp in zip(dev.images, dev.spacings)]
    cfg = Stage1Config(iterations=iterations, batch=batch, patch=patch, seed=seed, checkpoint_every=10**9)
    rows = []
    for label, rule, unit in variants:
        torch.manual_seed(seed)
        model = DURR(DURRConfig(modality=deg.modality, family=family, rule=rule, max_steps=max_steps))
        if unit == "pde":
            model.unit = PDERestorationUnit(channels=model.config.unit.channels)
        params = sum(p.numel() for p in model.unit.parameters())
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_stage1(model, sampler, cfg, tmp, family=family, progress=progress)
            train_seconds = time.perf_counter() - t0
        model = model.cpu().to(memory_format=torch.contiguous_format).eval()
        row = {"variant": label, "rule": rule, "unit": unit, "unit_params": params, "train_seconds": train_seconds}
        step_seconds, total_steps = 0.0, 0
        for tag, level in (("seen", seen_level), ("unseen", unseen_level)):
            psnrs, degraded_psnrs, best_steps = [], [], []
            for out in pairs[level]:
                scale = robust_scale(out.noisy, deg.modality)
                y, x = to_model(out.noisy, scale), to_model(out.reference, scale)
                t = time.perf_counter()
                res = model.rollout(y, mode="oracle", max_steps=max_steps,
                                    score=lambda z, x=x: -(z - x).pow(2).flatten(1).mean(1))
                step_seconds += time.perf_counter() - t
                total_steps += max_steps
                restored = from_model(res.output, scale)
                psnrs.append(score(restored[0, 0], out.reference[0, 0], deg.modality)["psnr"])
                degraded_psnrs.append(score(out.noisy[0, 0], out.reference[0, 0], deg.modality)["psnr"])
                best_steps.append(int(res.steps[0]))
            row[f"psnr_{tag}"] = float(np.mean(psnrs))
            row[f"degraded_psnr_{tag}"] = float(np.mean(degraded_psnrs))
            row[f"best_step_{tag}"] = float(np.mean(best_steps))
        row["seconds_per_step"] = step_seconds / max(total_steps, 1)
        if rule == "lm":
            row["lm_k"] = [round(float(v), 4) for v in model.rule.k.detach()]
        rows.append(row)
    return {"family": family, "seen_level": seen_level, "unseen_level": unseen_level, "iterations": iterations,
            "batch": batch, "patch": patch, "dev_slices": len(dev.images), "max_steps": max_steps, "rows": rows}


def print_restorer(res: dict) -> None:
    print(f"\n## DURR restorer per step rule: {res['family']}, dev split ({res['dev_slices']} slices), "
          f"stage 1 with {res['iterations']} iterations x {res['batch']} patches of {res['patch']} each; "
          f"oracle stop (best of {res['max_steps']} steps per image)\n")
    s, u = res["seen_level"], res["unseen_level"]
    print(f"| variant | unit params | PSNR seen {s:g} | best step | PSNR unseen {u:g} | best step "
          f"| s / step (mean over dev slices) | train s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = res["rows"]
    if rows:
        r0 = rows[0]
        print(f"| degraded input | | {r0['degraded_psnr_seen']:.2f} | | {r0['degraded_psnr_unseen']:.2f} | | | |")
    for r in rows:
        print(f"| {r['variant']} | {r['unit_params']} | {r['psnr_seen']:.2f} | {r['best_step_seen']:.1f} "
              f"| {r['psnr_unseen']:.2f} | {r['best_step_unseen']:.1f} | {r['seconds_per_step']:.4f} "
              f"| {r['train_seconds']:.0f} |")
    for r in rows:
        if "lm_k" in r:
            print(f"\nlearned LM k_n (n = 0..{len(r['lm_k']) - 1}; k_0 unused, step 0 is Euler): {r['lm_k']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.schemes", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser, default_parts=("convergence", "revnet", "restorer")) -> None:
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(default_parts))
    parser.add_argument("--iterations", type=int, default=200, help="restorer: stage-1 iterations per variant")
    parser.add_argument("--family", default="mr-rician", help="restorer: degradation family")
    parser.add_argument("--quick", action="store_true", help="pdenet: fewer L-BFGS iterations")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")


def run(args) -> int:
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "torch": torch.__version__}
    status = 0
    for part in args.parts:
        t = time.perf_counter()
        if part == "convergence":
            results[part] = convergence_table()
            print_convergence(results[part])
        elif part == "revnet":
            results[part] = revnet_table()
            print_revnet(results[part])
        elif part == "pdenet":
            results[part] = pdenet_report(quick=args.quick)
            print_pdenet(results[part])
        elif part == "restorer":
            missing = _needs_control()
            if missing:
                print(f"\n## DURR restorer per step rule: SKIPPED, {missing}")
                results[part] = {"skipped": missing}
                status = 1
                continue
            results[part] = restorer_table(family=args.family, iterations=args.iterations)
            print_restorer(results[part])
        print(f"\n({part}: {time.perf_counter() - t:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
