"""The whole training recipe of a shipped model: stage 1 (DURR and the fixed-depth baseline,
same data and iteration budget), the fixed step count, stage 2 (the policy), the model folder.

Every stage checkpoints under ``work_dir`` and resumes when rerun.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import yaml

from durr.control.baseline import FixedCNNConfig, FixedDepthCNN
from durr.control.restorer import DURR, DURRConfig
from durr.data.corpus import DEFAULT_CORPUS, load_split
from durr.data.sampling import PairSampler
from durr.data.sources import GROUP_OF_FAMILY, is_stand_in
from durr.infer.model_io import save_model
from durr.train.checkpoint import load_checkpoint
from durr.train.bank import build_bank
from durr.train.stage1 import Stage1Config, load_restorer_state, train_stage1
from durr.train.stage2 import Stage2Config, fresh_policy, rollout_cache_name, train_stage2


def apply_overrides(cfg, overrides: dict | None) -> None:
    """Set fields of a dataclass config from a nested dict (YAML), section by section.

    Raises ValueError naming an unknown section or key.
    """
    for section, values in (overrides or {}).items():
        target = getattr(cfg, section, None)
        if target is None:
            raise ValueError(f"unknown config section {section!r}")
        if not isinstance(values, dict) or isinstance(target, dict):
            setattr(cfg, section, values)
            continue
        for key, value in values.items():
            if not hasattr(target, key):
                raise ValueError(f"unknown config key {section}.{key}")
            sub = getattr(target, key)
            if isinstance(value, dict) and hasattr(sub, "__dataclass_fields__"):
                for k2, v2 in value.items():
                    setattr(sub, k2, v2)
            else:
                setattr(target, key, value)


@dataclass
class RecipeConfig:
    """A family's full recipe; YAML files override any field (nested by section)."""

    family: str = "mr-rician"
    model: DURRConfig = field(default_factory=DURRConfig)
    baseline: FixedCNNConfig = field(default_factory=FixedCNNConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    bank_per_slice: int = 8     # degraded realisations per training slice (CT: FBP is slow, fewer)
    degradation_options: dict = field(default_factory=dict)  # e.g. ct-lowdose {"circle": true}

    @classmethod
    def for_family(cls, family: str, overrides: dict | None = None) -> "RecipeConfig":
        from durr.degrade import get_degradation

        deg = get_degradation(family)
        cfg = cls(family=family, model=DURRConfig(modality=deg.modality, family=family))
        if family == "ct-lowdose":
            cfg.bank_per_slice = 3  # each realisation is a 720-view FBP
        apply_overrides(cfg, overrides)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


def load_recipe(family: str, config_path: str | None) -> RecipeConfig:
    overrides = yaml.safe_load(Path(config_path).read_text()) if config_path else None
    return RecipeConfig.for_family(family, overrides)


def load_bank(cfg: RecipeConfig, corpus: Path = DEFAULT_CORPUS, work_dir: Path | None = None,
              progress: bool = True, device: torch.device | str = "cpu"):
    """The family's degradation and its bank of degraded train-split slices (cached in ``work_dir``;
    degraded on ``device``, stored on the CPU), every slice of the split in order."""
    from durr.degrade import get_degradation

    deg = get_degradation(cfg.family)
    if cfg.degradation_options:
        deg = type(deg)(**cfg.degradation_options)
    data = load_split(GROUP_OF_FAMILY[cfg.family], "train", corpus)
    cache = None if work_dir is None else Path(work_dir) / f"bank_{cfg.bank_per_slice}_{cfg.stage1.seed}.pt"
    bank = build_bank(data.images, data.spacings, deg, cfg.bank_per_slice, cfg.stage1.seed, cache, progress, device)
    if len(bank[0]) != len(data.images) * cfg.bank_per_slice:
        raise ValueError(f"{cache}: the degradation bank holds {len(bank[0])} slices, not {len(data.images)} x "
                         f"{cfg.bank_per_slice}: it was built from another corpus; delete it")
    return deg, bank


def sampler_from_bank(bank, patch: int, source_ids: list[str] | None = None) -> PairSampler:
    """Random ``patch`` crops of a ``load_bank``-style (degradation, (degraded, reference, levels)).

    Slices smaller than the patch are left out. ``source_ids`` (one per bank slice): draw so that
    every source weighs the same (``balanced_weights``).
    """
    deg, (degraded, reference, levels) = bank
    keep = [i for i, t in enumerate(degraded) if min(t.shape) >= patch]
    if not keep:
        raise ValueError(f"no training slice is at least {patch}x{patch} pixels")
    kept = ([degraded[i] for i in keep], [reference[i] for i in keep], levels[keep])
    weights = None if source_ids is None else balanced_weights([source_ids[i] for i in keep])
    return PairSampler([], deg, deg.modality, patch=patch, bank=kept, bank_weights=weights)


def balanced_weights(source_ids: list[str]) -> torch.Tensor:
    """(N,) weights, 1 / (slices of the same source): each source is drawn equally often."""
    counts = Counter(source_ids)
    return torch.tensor([1.0 / counts[sid] for sid in source_ids], dtype=torch.float64)


def keep_slices(bank, source_ids: list[str], per_slice: int, keep: Callable[[str], bool]):
    """The bank's realisations of the slices whose source id passes ``keep``, in order.

    ``bank`` is ``load_bank``'s (degradation, (degraded, reference, levels)), ``per_slice``
    realisations of each slice in ``source_ids`` order. Raises ValueError when no slice is kept.
    """
    deg, (degraded, reference, levels) = bank
    if len(degraded) != len(source_ids) * per_slice:
        raise ValueError(f"the degradation bank holds {len(degraded)} slices, not {len(source_ids)} x {per_slice}: "
                         "it was built from another corpus; delete it from the work folder")
    keep_idx = [k * per_slice + r for k, sid in enumerate(source_ids) if keep(sid) for r in range(per_slice)]
    if not keep_idx:
        raise ValueError("no training slice is left after choosing sources")
    return deg, ([degraded[i] for i in keep_idx], [reference[i] for i in keep_idx], levels[keep_idx])


def source_filter(sources: list[str] | None, scans_only: bool = False) -> Callable[[str], bool]:
    """Which train-split source ids a stage uses: those listed (all when None), without stand-ins
    when ``scans_only``."""
    return lambda sid: (sources is None or sid in sources) and not (scans_only and is_stand_in(sid))


def check_sources(sources: list[str] | None, source_ids: list[str], stage: str) -> None:
    """A clear error for a configured source that the train split does not hold."""
    unknown = sorted(set(sources or ()) - set(source_ids))
    if unknown:
        raise ValueError(f"{stage}.sources names {unknown}, not in the corpus's train split "
                         f"(it holds {sorted(set(source_ids))}); rebuild the corpus or fix the recipe")


def stage_bank(bank, corpus: Path, cfg: RecipeConfig, stage: str):
    """``bank`` restricted to the slices ``cfg.stage1`` or ``cfg.stage2`` trains on (its ``sources``,
    and for stage 2 ``scans_only``), with the source id of each kept realisation (None when the
    stage takes the whole bank and does not balance sources)."""
    sub = getattr(cfg, stage)
    scans_only = stage == "stage2" and cfg.stage2.scans_only
    if sub.sources is None and not scans_only and not sub.balance_sources:
        return bank, None
    source_ids = load_split(GROUP_OF_FAMILY[cfg.family], "train", corpus).source_ids
    check_sources(sub.sources, source_ids, stage)
    keep = source_filter(sub.sources, scans_only)
    kept_ids = [sid for sid in source_ids if keep(sid) for _ in range(cfg.bank_per_slice)]
    return keep_slices(bank, source_ids, cfg.bank_per_slice, keep), kept_ids


def stage_sampler(bank, corpus: Path, cfg: RecipeConfig, stage: str, patch: int) -> PairSampler:
    """``patch`` crops of the slices ``stage`` trains on (``stage_bank``), every source drawn
    equally often when that stage's ``balance_sources`` is set."""
    bank, source_ids = stage_bank(bank, corpus, cfg, stage)
    return sampler_from_bank(bank, patch, source_ids if getattr(cfg, stage).balance_sources else None)


def policy_sampler(cfg: RecipeConfig, corpus: Path = DEFAULT_CORPUS, work_dir: Path | None = None,
                   progress: bool = True, bank=None) -> PairSampler:
    """Stage 2's pairs: the bank's slices of ``cfg.stage2.sources``, of scans only when ``scans_only``,
    every source drawn equally often when ``balance_sources``."""
    return stage_sampler(bank or load_bank(cfg, corpus, work_dir, progress), corpus, cfg, "stage2", cfg.stage2.patch)


def make_sampler(cfg: RecipeConfig, patch: int, corpus: Path = DEFAULT_CORPUS, work_dir: Path | None = None,
                 progress: bool = True, bank=None, device: torch.device | str = "cpu") -> PairSampler:
    """Stage 1's pairs from the corpus's train split (``cfg.stage1.sources``, every source drawn
    equally often when ``cfg.stage1.balance_sources``); ``bank`` reuses a ``load_bank`` result."""
    return stage_sampler(bank or load_bank(cfg, corpus, work_dir, progress, device), corpus, cfg, "stage1", patch)


def best_fixed_steps(psnr: torch.Tensor) -> int:
    """The single step count with the best mean PSNR over a rollout bank (N, T+1) at seen levels."""
    return int(psnr.mean(0).argmax())


def train_recipe(cfg: RecipeConfig, work_dir: str | Path, out_dir: str | Path, corpus: Path = DEFAULT_CORPUS,
                 device: torch.device = torch.device("cpu"), progress: bool = True) -> dict:
    """Run every stage (resuming what is done) and write the model folder ``out_dir``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    bank = load_bank(cfg, corpus, work_dir, progress, device)
    sampler = make_sampler(cfg, cfg.stage1.patch, corpus, bank=bank)

    torch.manual_seed(cfg.stage1.seed)
    model = DURR(cfg.model)
    s1 = train_stage1(model, sampler, cfg.stage1, work_dir / "restorer", device, progress=progress)
    torch.manual_seed(cfg.stage1.seed)
    baseline = FixedDepthCNN(cfg.baseline)
    s1b = train_stage1(baseline, sampler, cfg.stage1, work_dir / "fixed_cnn", device, progress=progress)
    load_restorer_state(model, load_checkpoint(work_dir / "restorer" / "checkpoint.pt")["model"])
    load_restorer_state(baseline, load_checkpoint(work_dir / "fixed_cnn" / "checkpoint.pt")["model"])
    model, baseline = model.cpu(), baseline.cpu()

    t2 = time.perf_counter()
    fresh_policy(model, cfg.stage2.reinforce.seed)
    s2 = train_stage2(model, policy_sampler(cfg, corpus, bank=bank), cfg.stage2, progress=progress,
                      bank_cache=work_dir / rollout_cache_name(cfg.stage2))
    stage2_seconds = time.perf_counter() - t2
    bank_psnr = s2.pop("bank_psnr")
    fixed_steps = best_fixed_steps(bank_psnr)

    info = {
        "family": cfg.family,
        "fixed_steps": fixed_steps,
        "recipe": cfg.to_dict(),
        "training": {
            "stage1_restorer_seconds": s1["seconds"], "stage1_fixed_cnn_seconds": s1b["seconds"],
            "stage2_seconds": stage2_seconds, "total_seconds": time.perf_counter() - t_start,
            "stage1_device": s1["device"],
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or "unknown",
            "stage2_final": s2["history"][-1], "stage2_knee_guard": s2["knee_guard"],
            "stage2_step_floor": s2["step_floor"], "stage2_step_ceiling": s2["step_ceiling"],
            "stage2_moved_cap": s2["moved_cap"], "stage2_noise_ref": s2["noise_ref"],
            "parameters": {"durr_unit": sum(p.numel() for p in model.unit.parameters()),
                           "policy": sum(p.numel() for p in model.policy.parameters()),
                           "fixed_cnn": sum(p.numel() for p in baseline.parameters())},
        },
    }
    save_model(out_dir, model, baseline, extra_config=info)
    (Path(work_dir) / "summary.json").write_text(json.dumps(info, indent=2, default=str))
    return info
