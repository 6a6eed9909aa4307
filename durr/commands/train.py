"""``durr train``: stage 1 (restorer, fixed-depth baseline), stage 2 (policy), or the whole recipe."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from durr.data.corpus import DEFAULT_CORPUS


def add_arguments(parser) -> None:
    parser.add_argument("stage", choices=["all", "restorer", "baseline", "policy"],
                        help="all: the full recipe of a shipped model (each stage resumes if interrupted)")
    parser.add_argument("--family", help="degradation family of a shipped recipe (ct-lowdose, mr-rician, gaussian)")
    user = parser.add_argument_group(
        "training on your own scans (policy, restorer)",
        "durr train policy --base MODEL --degradation D --levels A:B --data FOLDER --out DIR")
    user.add_argument("--data", type=Path, help="folder of your own clean scans (DICOM series, NIfTI, images); "
                      "split by scan into train and held-out")
    user.add_argument("--degradation", help="a registered name (ct-sparseview, mr-undersample, ...), "
                      "module.path:callable, or a YAML composing families")
    user.add_argument("--levels", help="training level range A:B (default: the degradation's seen range)")
    user.add_argument("--unseen", help="comma-separated levels to score beyond the training range "
                      "(default: the degradation's unseen levels)")
    user.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="constructor option of a registered degradation (repeatable), e.g. dose=0.5")
    user.add_argument("--base", type=Path, help="the model to start from (folder or shipped name)")
    user.add_argument("--heldout", type=float, default=0.2, help="fraction of scans held out (default 0.2)")
    user.add_argument("--max-slices", type=int, default=16, help="slices used per scan, evenly spread (default 16)")
    user.add_argument("--episodes", type=int, help="stage 2 rollouts (default 384)")
    parser.add_argument("--config", help="YAML overriding the recipe (sections model, baseline, stage1, stage2; "
                        "with --data: stage1, stage2, bank_per_slice)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints and logs (default: runs/<family>)")
    parser.add_argument("--out", type=Path, help="model folder to write (default: models/<family>)")
    parser.add_argument("--model", type=Path, help="policy stage on the corpus: the model folder whose restorer "
                        "is kept frozen")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--iterations", type=int, help="stage 1 iterations (overrides the config)")
    parser.add_argument("--seed", type=int, help="seed (overrides the config)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def _options(pairs: list[str]) -> dict:
    """``["dose=0.5", "circle=true"]`` -> {"dose": 0.5, "circle": True} (values read as YAML scalars)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"durr train: --option expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def run(args) -> int:
    from durr.train.device import pick_device
    from durr.train.distributed import World, device_for, training_session

    if args.threads:
        torch.set_num_threads(args.threads)
    world = World.from_env()
    device = device_for(world, pick_device(args.device))
    with training_session(world, device):
        if args.data is not None or args.degradation is not None:
            return _train_on_user_data(args, world, device)
        if not args.family:
            raise SystemExit("durr train: give --family (a shipped recipe) or --degradation with --data (your scans)")
        return _train_recipe_stage(args, world, device)


def _train_recipe_stage(args, world, device) -> int:
    from durr.control.baseline import FixedDepthCNN
    from durr.control.restorer import DURR
    from durr.infer.model_io import models_root
    from durr.train.distributed import rank_zero_first
    from durr.train.pipeline import load_recipe, make_sampler, train_recipe
    from durr.train.stage1 import train_stage1

    cfg = load_recipe(args.family, args.config)
    if args.iterations:
        cfg.stage1.iterations = args.iterations
    if args.seed is not None:
        cfg.stage1.seed = cfg.stage2.reinforce.seed = args.seed
    work = args.work_dir or Path("runs") / args.family
    out = args.out or models_root() / args.family
    if args.stage == "all":
        if world.distributed:
            raise SystemExit("durr train all runs on one process; under torchrun use the restorer, baseline "
                             "and policy stages")
        info = train_recipe(cfg, work, out, args.corpus, device)
        print(f"model written to {out} (fixed steps {info['fixed_steps']}, "
              f"{info['training']['total_seconds'] / 60:.1f} min)")
        return 0
    if args.stage in ("restorer", "baseline"):
        sampler = rank_zero_first(world, lambda: make_sampler(cfg, cfg.stage1.patch, args.corpus, work,
                                                              progress=world.rank == 0, device=device))
        torch.manual_seed(cfg.stage1.seed)
        model = DURR(cfg.model) if args.stage == "restorer" else FixedDepthCNN(cfg.baseline)
        sub = "restorer" if args.stage == "restorer" else "fixed_cnn"
        summary = train_stage1(model, sampler, cfg.stage1, work / sub, device, world=world)
        print(f"stage 1 ({args.stage}) done: {summary['iterations']} iterations, checkpoint {work / sub}")
        return 0
    return _train_policy(args, cfg, work, world)


def _train_policy(args, cfg, work: Path, world) -> int:
    """Stage 2 on an existing model folder: the restorer stays frozen, the policy is retrained."""
    from durr.infer.model_io import load_baseline, load_model, read_config, resolve_model_dir, save_model
    from durr.train.distributed import rank_zero_first
    from durr.train.pipeline import best_fixed_steps, policy_sampler
    from durr.train.stage2 import fresh_policy, rollout_cache_name, train_stage2

    model_dir = args.model or args.base
    if model_dir is None:
        raise SystemExit("durr train policy: --model MODEL_DIR is required")
    folder = resolve_model_dir(model_dir)
    model, baseline = load_model(folder), load_baseline(folder)
    extra = {k: v for k, v in read_config(folder).items() if k not in ("durr", "fixed_cnn")}
    sampler = rank_zero_first(world, lambda: policy_sampler(cfg, args.corpus, work, progress=world.rank == 0))
    t0 = time.perf_counter()
    model.config.policy = replace(cfg.model.policy)  # the recipe's policy (features, size), as ``train all``
    fresh_policy(model, cfg.stage2.reinforce.seed)  # the same start as ``durr train all``'s stage 2
    result = train_stage2(model, sampler, cfg.stage2, bank_cache=work / rollout_cache_name(cfg.stage2), world=world)
    if world.rank != 0:
        return 0
    extra["fixed_steps"] = best_fixed_steps(result["bank_psnr"])
    training = extra.setdefault("training", {})
    training.update(stage2_final=result["history"][-1], stage2_feature_selection=result["feature_selection"],
                    stage2_knee_guard=result["knee_guard"], stage2_step_floor=result["step_floor"],
                    stage2_step_ceiling=result["step_ceiling"], stage2_moved_cap=result["moved_cap"],
                    stage2_noise_ref=result["noise_ref"], stage2_seconds=time.perf_counter() - t0)
    training.setdefault("parameters", {})["policy"] = sum(p.numel() for p in model.policy.parameters())
    extra.setdefault("recipe", {})["stage2"] = asdict(cfg.stage2)
    extra["recipe"].setdefault("model", {})["policy"] = asdict(cfg.model.policy)
    save_model(args.out or folder, model, baseline, extra_config=extra)
    print(f"policy written to {args.out or folder}: {result['history'][-1]}")
    return 0


def _train_on_user_data(args, world, device) -> int:
    """``durr train policy|restorer --base M --degradation D [--levels A:B] --data F --out DIR``."""
    import shlex
    import sys

    from durr.data.user_folder import read_user_folder
    from durr.degrade.custom import load_degradation, parse_levels
    from durr.infer.model_io import load_model, resolve_model_dir
    from durr.train.user_training import UserTrainingConfig, train_on_user_data

    missing = [flag for flag, value in (("--data", args.data), ("--degradation", args.degradation),
                                        ("--base", args.base or args.model), ("--out", args.out)) if value is None]
    if missing:
        raise SystemExit(f"durr train {args.stage} on your own scans needs {', '.join(missing)}")
    if args.stage not in ("policy", "restorer"):
        raise SystemExit(f"durr train {args.stage}: training on your own scans is `policy` or `restorer`")
    base = resolve_model_dir(args.base or args.model)
    modality = load_model(base).config.modality
    levels = parse_levels(args.levels) if args.levels else None
    try:
        degradation = load_degradation(args.degradation, levels, modality, _options(args.option) or None)
        unseen = None if not args.unseen else tuple(float(v) for v in args.unseen.split(","))
        data = read_user_folder(args.data, modality, args.heldout, args.seed or 0, args.max_slices)
    except ValueError as err:
        raise SystemExit(f"durr train: {err}") from None
    cfg = UserTrainingConfig(what=args.stage, seed=args.seed or 0, unseen_levels=unseen)
    if args.config:
        import yaml

        from durr.train.pipeline import apply_overrides

        try:
            apply_overrides(cfg, yaml.safe_load(Path(args.config).read_text()))
        except ValueError as err:
            raise SystemExit(f"durr train: {args.config}: {err}") from None
    if args.iterations:
        cfg.stage1.iterations = args.iterations
    if args.episodes:
        cfg.stage2.episodes = args.episodes
    work = args.work_dir or Path("runs") / f"user-{Path(args.out).name}"
    command = " ".join(shlex.quote(str(a)) for a in getattr(args, "command_line", ["durr", *sys.argv[1:]]))
    summary = train_on_user_data(base, degradation, data, args.out, work, cfg, device, world, command=command)
    if summary is not None:
        secs = summary["user_training"]["seconds"]
        print(f"model written to {args.out} (training {secs['training_total'] / 60:.1f} min; "
              f"held-out table in {Path(args.out) / 'MODEL_CARD.md'})")
    return 0
