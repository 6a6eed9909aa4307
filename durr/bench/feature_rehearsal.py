"""Which state features let a stopping policy extrapolate to heavier levels, on seen levels only.

Trains one policy per feature set on the lightest part of a model's cached stage-2 rollouts and
scores its greedy return (PSNR gain over the input, dB) on the heaviest part, next to the oracle
stop's. This is stage 2's feature-selection rehearsal (``durr.train.feature_selection``) with a
wider gap by default (lightest third -> heaviest third), the comparison behind the CT and
gaussian recipes' ``model.policy.features``::

    python -m durr.bench.feature_rehearsal --family ct-lowdose \\
        --rollouts runs/ct-real/rollouts_balanced.pt

A feature set is names joined by ``+``; sets are comma-separated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from durr.control.features import FEATURE_NAMES
from durr.control.policy import LEVEL_FREE_FEATURES, PolicyConfig, StopPolicy
from durr.degrade import get_degradation
from durr.train.checkpoint import load_checkpoint
from durr.train.feature_selection import rehearsal_split
from durr.train.reinforce import ReinforceConfig, episode_return, greedy_stops, train_policy

RATIOS = "+".join(LEVEL_FREE_FEATURES)
DEFAULT_SETS = ",".join([RATIOS, f"{RATIOS}+update_over_sigma", f"{RATIOS}+residual_lag1",
                         f"{RATIOS}+residual_lag1+residual_structure"])


def rehearse(features: torch.Tensor, psnr: torch.Tensor, severity: torch.Tensor, names: tuple[str, ...],
             cfg: ReinforceConfig, light_fraction: float | None = 1 / 3) -> dict:
    """Train on the light episodes, score the heavy ones. features (N, T+1, F), psnr (N, T+1),
    severity (N,). Returns {"greedy_return", "oracle_return", "steps", "best_steps"} on the heavy part."""
    light, heavy = rehearsal_split(severity, light_fraction=light_fraction)
    torch.manual_seed(cfg.seed)
    policy = StopPolicy(PolicyConfig(features=names))
    train_policy(policy, features[light].float(), psnr[light], cfg)
    with torch.no_grad():
        stops = greedy_stops(policy.stop_probability(features[heavy].float()))
    return {"greedy_return": float(episode_return(psnr[heavy], stops, cfg.step_cost).mean()),
            "oracle_return": float((psnr[heavy].max(1).values - psnr[heavy, 0]).mean()),
            "steps": float(stops.float().mean()), "best_steps": float(psnr[heavy].argmax(1).float().mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, help="the degradation family the rollouts were drawn at")
    parser.add_argument("--rollouts", required=True, type=Path, help="a stage-2 rollout cache (durr train's work folder)")
    parser.add_argument("--sets", default=DEFAULT_SETS, help=f"feature sets (default: {DEFAULT_SETS})")
    parser.add_argument("--light-fraction", type=float, default=1 / 3,
                        help="train on this bottom fraction of the severity range (0 = stage 2's: all below the heaviest third)")
    parser.add_argument("--iterations", type=int, default=ReinforceConfig.iterations)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = [tuple(s.split("+")) for s in args.sets.split(",") if s]
    unknown = sorted({n for names in sets for n in names} - set(FEATURE_NAMES))
    if unknown:
        parser.error(f"unknown features {unknown}; choose from {FEATURE_NAMES}")
    bank = load_checkpoint(args.rollouts)
    if bank["features"].shape[-1] != len(FEATURE_NAMES):
        parser.error(f"{args.rollouts} holds {bank['features'].shape[-1]} features, not {len(FEATURE_NAMES)}: "
                     "an older cache; rerun `durr train policy` to roll it out again")
    severity = get_degradation(args.family).severity(bank["levels"])
    cfg = ReinforceConfig(iterations=args.iterations, seed=args.seed)
    print("| features | greedy return, heaviest part (dB) | oracle (dB) | mean steps | best steps |")
    print("|---|---|---|---|---|")
    for names in sets:
        r = rehearse(bank["features"], bank["psnr"], severity, names, cfg, args.light_fraction or None)
        print(f"| {', '.join(names)} | {r['greedy_return']:.2f} | {r['oracle_return']:.2f} | {r['steps']:.1f} | "
              f"{r['best_steps']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
