"""``durr train``: stage 1 (restorer, fixed-depth baseline), stage 2 (policy), or the whole recipe."""

from __future__ import annotations

from pathlib import Path

import torch

from durr.data.corpus import DEFAULT_CORPUS


def add_arguments(parser) -> None:
    parser.add_argument("stage", choices=["all", "restorer", "baseline", "policy"],
                        help="all: the full recipe of a shipped model (each stage resumes if interrupted)")
    parser.add_argument("--family", required=True, help="degradation family (e.g. ct-lowdose, mr-rician, gaussian)")
    parser.add_argument("--config", help="YAML overriding the recipe (sections model, baseline, stage1, stage2)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints and logs (default: runs/<family>)")
    parser.add_argument("--out", type=Path, help="model folder to write (default: models/<family>)")
    parser.add_argument("--model", type=Path, help="policy stage: the model folder whose restorer is kept frozen")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--iterations", type=int, help="stage 1 iterations (overrides the config)")
    parser.add_argument("--seed", type=int, help="seed (overrides the config)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def run(args) -> int:
    from durr.control.baseline import FixedDepthCNN
    from durr.control.restorer import DURR
    from durr.infer.model_io import models_root
    from durr.train.device import pick_device
    from durr.train.pipeline import load_recipe, make_sampler, train_recipe
    from durr.train.stage1 import train_stage1

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_recipe(args.family, args.config)
    if args.iterations:
        cfg.stage1.iterations = args.iterations
    if args.seed is not None:
        cfg.stage1.seed = cfg.stage2.reinforce.seed = args.seed
    work = args.work_dir or Path("runs") / args.family
    out = args.out or models_root() / args.family
    device = pick_device(args.device)
    if args.stage == "all":
        info = train_recipe(cfg, work, out, args.corpus, device)
        print(f"model written to {out} (fixed steps {info['fixed_steps']}, "
              f"{info['training']['total_seconds'] / 60:.1f} min)")
        return 0
    if args.stage in ("restorer", "baseline"):
        sampler = make_sampler(cfg, cfg.stage1.patch, args.corpus, work)
        torch.manual_seed(cfg.stage1.seed)
        model = DURR(cfg.model) if args.stage == "restorer" else FixedDepthCNN(cfg.baseline)
        sub = "restorer" if args.stage == "restorer" else "fixed_cnn"
        summary = train_stage1(model, sampler, cfg.stage1, work / sub, device)
        print(f"stage 1 ({args.stage}) done: {summary['iterations']} iterations, checkpoint {work / sub}")
        return 0
    return _train_policy(args, cfg, work)


def _train_policy(args, cfg, work: Path) -> int:
    """Stage 2 on an existing model folder: the restorer stays frozen, the policy is retrained."""
    from durr.infer.model_io import load_baseline, load_model, read_config, resolve_model_dir, save_model
    from durr.train.pipeline import best_fixed_steps, make_sampler
    from durr.train.stage2 import train_stage2

    if args.model is None:
        raise SystemExit("durr train policy: --model MODEL_DIR is required")
    folder = resolve_model_dir(args.model)
    model, baseline = load_model(folder), load_baseline(folder)
    extra = {k: v for k, v in read_config(folder).items() if k not in ("durr", "fixed_cnn")}
    sampler = make_sampler(cfg, cfg.stage2.patch, args.corpus, work)
    result = train_stage2(model, sampler, cfg.stage2, bank_cache=work / "rollouts.pt")
    extra["fixed_steps"] = best_fixed_steps(result["bank_psnr"])
    extra.setdefault("training", {})["stage2_final"] = result["history"][-1]
    save_model(args.out or folder, model, baseline, extra_config=extra)
    print(f"policy written to {args.out or folder}: {result['history'][-1]}")
    return 0
