"""Adapt a model to a new degradation on the user's own scans.

``what="policy"``: the base model's restorer is kept frozen and only the stopping policy is
retrained by REINFORCE (minutes on a CPU). ``what="restorer"``: the restorer is fine-tuned
from the base model's weights (stage 1) and then the policy is retrained on it (stage 2).

Both run alone or under ``torchrun`` (``durr.train.distributed``); the degradation bank is
built once by rank 0 and read by the others from ``work_dir``. The result is a complete
model folder (weights, config, card) that ``durr denoise`` and the app load.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from durr.control.restorer import DURR
from durr.data.sampling import levels_at_severity
from durr.data.user_folder import UserData
from durr.infer.model_io import load_baseline, load_model, read_config, resolve_model_dir, save_model
from durr.train.bank import build_bank
from durr.train.distributed import World, rank_zero_first
from durr.train.heldout import Contender, evaluate_heldout, shortfalls, table_markdown
from durr.train.pipeline import best_fixed_steps, sampler_from_bank
from durr.train.stage1 import Stage1Config, train_stage1
from durr.train.stage2 import Stage2Config, restorer_fingerprint, rollout_cache_name, train_stage2


class HeldoutShortfallWarning(UserWarning):
    """The retrained policy scores below another rule (e.g. the base model's) on the held-out scans."""


@dataclass
class UserTrainingConfig:
    """What to train and how much; the defaults fit a policy in minutes on a 2-core CPU."""

    what: str = "policy"                 # "policy" or "restorer"
    bank_per_slice: int = 3              # degraded realisations of each training slice
    seed: int = 0
    stage1: Stage1Config = field(default_factory=lambda: Stage1Config(iterations=300, lr=3e-4))
    stage2: Stage2Config = field(default_factory=lambda: Stage2Config(whole_slices=True, select_features=True))
    eval_seen_levels: int = 3            # seen levels scored on the held-out split (lightest..heaviest)
    unseen_levels: tuple[float, ...] | None = None   # None: the degradation's own


def evaluation_levels(degradation, count: int, unseen: tuple[float, ...] | None) -> list[float]:
    """``count`` seen levels evenly spread in severity (snapped to the family's grid), then the unseen ones."""
    lo, hi = degradation.severity(torch.tensor(degradation.seen, dtype=torch.float64)).sort().values.tolist()
    sev = torch.linspace(lo, hi, max(count, 1), dtype=torch.float64)
    seen = levels_at_severity(degradation, sev, degradation.seen).tolist()
    unseen = list(degradation.unseen if unseen is None else unseen)
    return list(dict.fromkeys(float(round(v, 6)) for v in seen + unseen))


def _bank(data: UserData, degradation, cfg: UserTrainingConfig, work_dir: Path, world: World, progress: bool):
    cache = work_dir / f"bank_{cfg.bank_per_slice}_{cfg.seed}.pt"
    return degradation, rank_zero_first(world, lambda: build_bank(
        data.train.images, data.train.spacings, degradation, cfg.bank_per_slice, cfg.seed, cache,
        progress and world.rank == 0))


def _check_resumable_base(stage1_dir: Path, fingerprint: str, base_dir: Path) -> None:
    """Stage 1 resumes from ``stage1_dir``'s checkpoint: refuse one fine-tuned from another base restorer.

    The base restorer's SHA-256 is recorded in ``stage1_dir/base_restorer.txt`` at the first start.
    """
    record = stage1_dir / "base_restorer.txt"
    if (stage1_dir / "checkpoint.pt").exists() and (not record.exists() or record.read_text().strip() != fingerprint):
        raise ValueError(f"{stage1_dir} holds a stage-1 checkpoint fine-tuned from another base restorer than "
                         f"{base_dir}'s (or of unknown origin); use another --work-dir or delete that folder")
    stage1_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(fingerprint + "\n")


def train_on_user_data(base: str | Path, degradation, data: UserData, out_dir: str | Path, work_dir: str | Path,
                       cfg: UserTrainingConfig, device: torch.device = torch.device("cpu"),
                       world: World | None = None, progress: bool = True, command: str = "") -> dict | None:
    """Train, score on the held-out split, write ``out_dir``. Returns the summary on rank 0 (None elsewhere).

    Raises ValueError if the base model and the degradation are of different modalities.
    """
    world = world or World()
    if cfg.what not in ("policy", "restorer"):
        raise ValueError(f"what must be 'policy' or 'restorer', got {cfg.what!r}")
    corpus_only = [name for name, on in (("stage1.sources", cfg.stage1.sources is not None),
                                         ("stage1.balance_sources", cfg.stage1.balance_sources),
                                         ("stage2.sources", cfg.stage2.sources is not None),
                                         ("stage2.scans_only", cfg.stage2.scans_only),
                                         ("stage2.balance_sources", cfg.stage2.balance_sources)) if on]
    if corpus_only:
        raise ValueError(f"{', '.join(corpus_only)}: these choose among the corpus's sources and do not apply to "
                         "a folder of your scans (every scan is used; see --heldout)")
    base_dir = resolve_model_dir(base)
    base_model = load_model(base_dir)
    if base_model.config.modality != degradation.modality:
        raise ValueError(f"{base_dir}: a {base_model.config.modality} model cannot learn the "
                         f"{degradation.modality} degradation {degradation.name!r}")
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bank = _bank(data, degradation, cfg, work_dir, world, progress)
    t_bank = time.perf_counter() - t0
    smallest = min(min(t.shape) for t in bank[1][0])
    cfg.stage1.patch, cfg.stage2.patch = min(cfg.stage1.patch, smallest), min(cfg.stage2.patch, smallest)

    model: DURR = copy.deepcopy(base_model)
    model.config.family = degradation.name
    if cfg.what == "policy":  # the restorer stays the base model's: share it (and its held-out trajectories)
        model.unit = base_model.unit
    stage1 = None
    if cfg.what == "restorer":
        cfg.stage1.seed = cfg.seed
        _check_resumable_base(work_dir / "restorer", restorer_fingerprint(base_model), base_dir)
        stage1 = train_stage1(model, sampler_from_bank(bank, cfg.stage1.patch), cfg.stage1, work_dir / "restorer",
                              device, progress=progress, world=world)
        model = model.cpu()
    t1 = time.perf_counter()
    cfg.stage2.reinforce.seed = cfg.seed
    result = train_stage2(model, sampler_from_bank(bank, cfg.stage2.patch), cfg.stage2, progress=progress,
                          bank_cache=work_dir / rollout_cache_name(cfg.stage2, f"rollouts_{cfg.what}"), world=world)
    t2 = time.perf_counter()
    fixed_steps = best_fixed_steps(result["bank_psnr"])
    if world.rank != 0:
        return None

    levels = evaluation_levels(degradation, cfg.eval_seen_levels, cfg.unseen_levels)
    contenders = [Contender("base model's policy", base_model, "policy"),
                  Contender("new policy", model, "policy"),
                  Contender(f"best fixed steps ({fixed_steps})", model, "fixed", fixed_steps),
                  Contender("oracle stop", model, "oracle")]
    rows = evaluate_heldout(contenders, data.heldout.images, data.heldout.spacings, degradation, levels,
                            cfg.seed, progress)
    t3 = time.perf_counter()
    behind = shortfalls(rows)
    for b in behind:
        warnings.warn(f"on the held-out scans the new policy scores {b['deficit_db']:.2f} dB below "
                      f"'{b['method']}' at level {b['level']:g}", HeldoutShortfallWarning, stacklevel=2)
    summary = {
        "family": degradation.name,
        "fixed_steps": fixed_steps,
        "user_training": {
            "base_model": str(base_dir), "base_family": read_config(base_dir).get("family"),
            "what": cfg.what, "degradation": degradation.name, "modality": degradation.modality,
            "seen": list(degradation.seen), "evaluation_levels": levels, "data": data.summary(),
            "config": asdict(cfg), "command": command, "ranks": world.size, "device": str(device),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "seconds": {"bank": t_bank, "stage1": (stage1 or {}).get("seconds", 0.0),
                        "stage2": t2 - t1, "training_total": t2 - t0, "heldout_evaluation": t3 - t2},
            "stage2_final": result["history"][-1], "feature_selection": result["feature_selection"],
            "knee_guard": result["knee_guard"], "step_floor": result["step_floor"],
            "step_ceiling": result["step_ceiling"], "moved_cap": result["moved_cap"],
            "policy_features": list(model.config.policy.features), "heldout": rows,
            "shortfalls": behind,
        },
    }
    save_model(out_dir, model, load_baseline(base_dir), extra_config=summary)
    from durr.train.user_card import write_user_card

    write_user_card(out_dir, summary, table_markdown(rows, degradation.seen, levels))
    return summary
