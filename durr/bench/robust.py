"""Adversarial robustness benchmarks: digits (natural, PGD-10, YOPO-5-3) and the DURR restorer.

    python -m durr.bench.robust [--parts digits restorer] [--epochs 20] [--eps 0.1] [--threads 1]
                                [--restorer-iterations 100] [--restorer-k 3] [--json out.json]

``digits``
    scikit-learn's digits (8x8, grey levels scaled to [0, 1]; 1300 training / 497 test images,
    stratified), classifier ``build_backbone("euler", 32 channels, 4 blocks, pool=4)``, Adam
    with a cosine schedule, batch 128. Rows: natural training, PGD-10 training (step 2.5 eps /
    10, random start), YOPO-5-3 (step 2 eps / 3) for the same epochs, and YOPO-5-3 for half the
    epochs. Columns: clean test accuracy, accuracy under PGD-20 (step 2.5 eps / 20, random start),
    training wall time and CPU time (the process's, which other jobs on a shared machine disturb
    less).
``restorer``
    The DURR restorer (``durr.control``, Euler rule) trained with the stage-1 loss for
    ``--restorer-iterations`` iterations naturally, and with PGD-k adversarial training (the
    degraded patch perturbed within ``eps`` to maximise the stage-1 loss, ``k = --restorer-k``).
    Evaluated on central 128x128 crops of the dev split at the heaviest seen level, run for the
    number of steps stage 1 schedules for that level: PSNR of the clean-input restoration and
    under a PGD-20 attack on the degraded input (``eps`` in the working domain: MR images are
    divided by their 99.5th percentile), and the training time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import torch

PARTS = ("digits", "restorer")


def digits_table(epochs: int = 20, eps: float = 0.1, **overrides) -> list[dict]:
    """The digits rows (see the module doc)."""
    from durr.robust import run_digits

    return run_digits(("natural", "pgd", "yopo", "yopo"), epochs_at={3: max(1, epochs // 2)}, eps=eps,
                      epochs=epochs, **overrides)


def print_digits(rows: list[dict]) -> None:
    eps = rows[0]["config"]["eps"]
    print(f"\n## Adversarial training on digits (L-inf eps = {eps:g} on [0, 1] inputs)\n")
    print("| training | epochs | clean acc | PGD-20 acc | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['epochs']} | {r['clean_acc']:.1%} | {r['pgd20_acc']:.1%} "
              f"| {r['train_seconds']:.0f} | {r['train_cpu_seconds']:.0f} |")
    pgd = next((r for r in rows if r["method"].startswith("PGD")), None)
    if pgd:
        for r in rows:
            if r["method"].startswith("YOPO"):
                print(f"\n{r['method']} ({r['epochs']} epochs) vs {pgd['method']}: robust accuracy "
                      f"{100 * (r['pgd20_acc'] - pgd['pgd20_acc']):+.1f} points, wall time x"
                      f"{r['train_seconds'] / pgd['train_seconds']:.2f}, CPU time x"
                      f"{r['train_cpu_seconds'] / pgd['train_cpu_seconds']:.2f}")


def restorer_table(family: str = "mr-rician", iterations: int = 100, train_k: int = 3, eps: float = 0.01,
                   batch: int = 8, patch: int = 48, crop: int = 128, seed: int = 0) -> dict:
    """Natural vs PGD-k-trained DURR restorer under PGD-20 (see the module doc)."""
    from durr.control.normalize import from_model, robust_scale, to_model
    from durr.control.restorer import DURR, DURRConfig
    from durr.data.corpus import load_split
    from durr.data.sampling import PairSampler
    from durr.data.sources import GROUP_OF_FAMILY
    from durr.degrade import get_degradation
    from durr.metrics import score
    from durr.robust import pgd_attack, restoration_attack
    from durr.train.schedule import StepSchedule
    from durr.train.stage1 import Stage1Config, cosine_lr, durr_loss, train_stage1

    deg = get_degradation(family)
    group = GROUP_OF_FAMILY[family]
    train = load_split(group, "train")
    keep = [i for i, im in enumerate(train.images) if min(im.shape) >= patch]
    sampler = PairSampler([train.images[i] for i in keep], deg, deg.modality, patch=patch,
                          spacings=[train.spacings[i] for i in keep])
    cfg = Stage1Config(iterations=iterations, batch=batch, patch=patch, seed=seed, checkpoint_every=10**9)
    schedule = StepSchedule(family, tuple(deg.seen), cfg.n_min, cfg.n_max)
    level = float(deg.seen[1])
    steps = int(schedule.steps(torch.tensor([level]))[0])

    def natural():
        torch.manual_seed(seed)
        model = DURR(DURRConfig(modality=deg.modality, family=family))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            train_stage1(model, sampler, cfg, tmp, family=family, progress=False)
        return model.cpu().to(memory_format=torch.contiguous_format), time.perf_counter() - t0

    def adversarial():
        torch.manual_seed(seed)
        model = DURR(DURRConfig(modality=deg.modality, family=family))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        for it in range(iterations):
            pairs = sampler.sample(batch, g)
            n = schedule.steps(pairs.level)
            y_adv = pgd_attack(lambda z: z, pairs.degraded, lambda z: durr_loss(model, z, pairs.clean, n, cfg),
                               eps, 2.5 * eps / train_k, train_k, generator=g)
            for group_ in opt.param_groups:
                group_["lr"] = cosine_lr(cfg, it)
            loss = durr_loss(model, y_adv, pairs.clean, n, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
        return model, time.perf_counter() - t0

    dev = load_split(group, "dev")
    g = torch.Generator().manual_seed(1000 + seed)
    crops = []
    for im, sp in zip(dev.images, dev.spacings):
        t = torch.from_numpy(np.ascontiguousarray(im, dtype=np.float32))[None, None]
        h, w = t.shape[-2:]
        i, j = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        out = deg(t[..., i: i + crop, j: j + crop], level, generator=g, spacing_mm=sp)
        crops.append(out)
    rows = []
    for label, make in (("natural", natural), (f"PGD-{train_k}", adversarial)):
        model, seconds = make()
        model.eval()
        clean_psnr, adv_psnr = [], []
        for out in crops:
            scale = robust_scale(out.noisy, deg.modality)
            y, x = to_model(out.noisy, scale), to_model(out.reference, scale)

            def restore(z):
                return model.unroll(z, steps)[-1]

            with torch.no_grad():
                clean_out = restore(y)
            y_adv = restoration_attack(restore, y, x, eps=eps, k=20, generator=torch.Generator().manual_seed(seed))
            with torch.no_grad():
                adv_out = restore(y_adv)
            clean_psnr.append(score(from_model(clean_out, scale)[0, 0], out.reference[0, 0], deg.modality)["psnr"])
            adv_psnr.append(score(from_model(adv_out, scale)[0, 0], out.reference[0, 0], deg.modality)["psnr"])
        rows.append({"training": label, "clean_psnr": float(np.mean(clean_psnr)),
                     "pgd20_psnr": float(np.mean(adv_psnr)), "train_seconds": seconds})
    return {"family": family, "level": level, "steps": steps, "eps": eps, "iterations": iterations,
            "crop": crop, "dev_slices": len(crops), "rows": rows}


def print_restorer(res: dict) -> None:
    print(f"\n## DURR restorer under PGD-20: {res['family']} at level {res['level']:g} ({res['steps']} steps), "
          f"{res['dev_slices']} dev crops of {res['crop']}x{res['crop']}, eps = {res['eps']:g} (working domain); "
          f"{res['iterations']} training iterations each\n")
    print("| training | clean PSNR | PGD-20 PSNR | train s |")
    print("|---|---|---|---|")
    for r in res["rows"]:
        print(f"| {r['training']} | {r['clean_psnr']:.2f} | {r['pgd20_psnr']:.2f} | {r['train_seconds']:.0f} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=["digits"])
    parser.add_argument("--epochs", type=int, default=20, help="digits: training epochs")
    parser.add_argument("--eps", type=float, default=0.1, help="digits: L-inf radius on [0, 1] inputs")
    parser.add_argument("--restorer-iterations", type=int, default=100)
    parser.add_argument("--restorer-k", type=int, default=3, help="restorer: PGD steps in adversarial training")
    parser.add_argument("--restorer-eps", type=float, default=0.01)
    parser.add_argument("--family", default="mr-rician")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)


def run(args) -> int:
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "torch": torch.__version__}
    for part in args.parts:
        t = time.perf_counter()
        if part == "digits":
            results[part] = digits_table(epochs=args.epochs, eps=args.eps)
            print_digits(results[part])
        else:
            from durr.bench.schemes import _needs_control

            missing = _needs_control()
            if missing:
                print(f"\n## DURR restorer under PGD-20: SKIPPED, {missing}")
                continue
            results[part] = restorer_table(args.family, args.restorer_iterations, args.restorer_k, args.restorer_eps)
            print_restorer(results[part])
        print(f"\n({part}: {time.perf_counter() - t:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durr.bench.robust", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
