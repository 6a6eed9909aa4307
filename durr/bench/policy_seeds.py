"""How much the stopping policy depends on its REINFORCE seed, at seen and unseen levels.

On seen-level rollouts many stopping rules are almost equally good, so policies trained from
different seeds on the same rollouts can part at the unseen levels. This command trains one
policy per seed on a model's cached stage-2 rollouts (the file ``durr train`` left in its work
folder) and scores each, and the mean of their stop probabilities, on the benchmark's test
images at every level (PSNR dB / mean steps, same images, noise seeds and metric as
``durr benchmark``)::

    python -m durr.bench.policy_seeds --family mr-rician --model models/mr-rician \\
        --rollouts runs/mr-rician/rollouts_whole_384_24_scans.pt --seeds 5 [--knee-guard]

``--knee-guard`` adds a row per seed: that policy with the knee guard (``durr.control.knee``)
whose ratio is fitted on the same rollouts, as stage 2 does with ``knee_guard: true``.
``--wrappers`` adds a row per seed: that policy with every stopping wrapper the model's recipe
asks for (step floor, step ceiling, knee guard, discrepancy cap; ``config.json``'s
``recipe.stage2``), refitted on the same rollouts as stage 2 fits them.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from durr.bench import benchmark as bench
from durr.control.policy import StopPolicy
from durr.control.stopping import policy_stops
from durr.data.corpus import DEFAULT_CORPUS, load_split
from durr.data.sources import GROUP_OF_FAMILY
from durr.degrade import get_degradation
from durr.infer.model_io import load_model, read_config
from durr.train.checkpoint import load_checkpoint
from durr.train.heldout import psnr_per_step, scan_trajectory
from durr.train.reinforce import ReinforceConfig, greedy_stops, train_policy
from durr.train.stage2 import Stage2Config, fit_stopping_wrappers, restorer_fingerprint

WRAPPERS = ("step_floor", "step_ceiling", "knee_guard", "moved_cap")


def scored_trajectories(model, family: str, split: str, max_images: int | None, levels, corpus: Path):
    """Per (image, level): features (N, T+1, F), protocol PSNR (N, T+1) and levels (N,)."""
    degradation = get_degradation(family)
    images = bench.select_images(bench.images_from_slices(load_split(GROUP_OF_FAMILY[family], split, corpus)),
                                 max_images)
    feats, psnr, lv = [], [], []
    for level in bench.parse_levels(levels, family, degradation):
        for im in images:
            noisy, ref = bench.degrade_image(degradation, im, level, bench.level_seed(family, split, im, level))
            traj, f = scan_trajectory(model, noisy)
            feats.append(f)
            psnr.append(torch.from_numpy(psnr_per_step(traj, ref, degradation.modality)))
            lv.append(level)
    return torch.stack(feats), torch.stack(psnr), np.array(lv)


def score_row(name: str, stops: torch.Tensor, psnr: torch.Tensor, levels: np.ndarray) -> str:
    """A table row: mean PSNR / mean step at ``stops`` (N,) of ``psnr`` (N, T+1), per level of ``levels`` (N,)."""
    got = psnr.gather(1, stops[:, None])[:, 0]
    cells = [f"{float(got[m].mean()):.2f} / {float(stops[m].float().mean()):.1f}"
             for m in (torch.from_numpy(levels == v) for v in dict.fromkeys(levels))]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True)
    parser.add_argument("--model", required=True, type=Path, help="model folder whose restorer made the rollouts")
    parser.add_argument("--rollouts", required=True, type=Path, help="stage-2 rollout cache of that restorer")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=ReinforceConfig.iterations, help="REINFORCE iterations")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--levels", default="seen,unseen")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--knee-guard", action="store_true",
                        help="also score each seed's policy with a knee guard fitted on the same rollouts")
    parser.add_argument("--wrappers", action="store_true",
                        help="also score each seed's policy with the stopping wrappers of the model's recipe, "
                             "refitted on the same rollouts")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    bank = load_checkpoint(args.rollouts)
    if bank.get("restorer") != restorer_fingerprint(model):
        parser.error(f"{args.rollouts} was rolled out by another restorer than {args.model}'s")
    max_images = bench.DEFAULT_MAX_IMAGES.get(args.family) if args.max_images is None else args.max_images
    feats, psnr, levels = scored_trajectories(model, args.family, args.split, max_images, args.levels, args.corpus)
    print("| policy | " + " | ".join(f"{v:g}" for v in dict.fromkeys(levels)) + " |")
    print("|---|" + "---|" * len(dict.fromkeys(levels)))
    asked = read_config(args.model).get("recipe", {}).get("stage2", {})
    wrappers = Stage2Config(**{name: bool(asked.get(name)) for name in WRAPPERS})
    # each seed starts from the model's policy shape and features, not from its fitted wrappers
    bare = replace(model.config.policy, knee_ratio=None, step_floor=None, step_ceiling=None, moved_cap=None)
    probs = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        policy = StopPolicy(replace(bare))
        train_policy(policy, bank["features"].float(), bank["psnr"], ReinforceConfig(iterations=args.iterations, seed=seed))
        with torch.no_grad():
            probs.append(policy.stop_probability(feats.float()))
        print(score_row(f"seed {seed}", greedy_stops(probs[-1]), psnr, levels), flush=True)
        if args.knee_guard:
            fit_stopping_wrappers(policy, bank["features"], bank["psnr"], Stage2Config(knee_guard=True))
            ratio = policy.config.knee_ratio
            guard = f"knee guard ({ratio:g})" if ratio is not None else "knee guard (none beat the policy alone)"
            print(score_row(f"seed {seed} + {guard}", policy_stops(policy, feats), psnr, levels), flush=True)
        if args.wrappers:
            fit_stopping_wrappers(policy, bank["features"], bank["psnr"], wrappers)
            names = ", ".join(n for n in WRAPPERS if getattr(wrappers, n)) or "none asked for"
            print(score_row(f"seed {seed} + the recipe's wrappers ({names})", policy_stops(policy, feats), psnr, levels),
                  flush=True)
    print(score_row("mean of the seeds' stop probabilities", greedy_stops(torch.stack(probs).mean(0)), psnr, levels))
    print(score_row("oracle", psnr.argmax(1), psnr, levels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
