"""Score models on held-out slices: learned stop vs fixed steps vs oracle stop, per level.

Each held-out slice is degraded whole at each level (seeded by slice and level), the
restorer is rolled out to its step cap once, and every stopping rule is read off the same
trajectory: a policy stops at its first step with stop probability > 0.5 (or at the cap), a
fixed rule at its step count, the oracle at the best-PSNR step (an upper bound: it uses the
reference). PSNR is the protocol's (PROTOCOL.md section 4, primary window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from durr.control.features import trajectory_features
from durr.control.normalize import from_model, robust_scale, to_model
from durr.control.restorer import DURR
from durr.control.stopping import policy_stops
from durr.metrics import metric_window


@dataclass
class Contender:
    """A row of the table: ``rule`` is "policy", "fixed" (with ``steps``) or "oracle"."""

    label: str
    model: DURR
    rule: str
    steps: int = 0


def psnr_per_step(trajectory: torch.Tensor, reference: np.ndarray, modality: str) -> np.ndarray:
    """trajectory (T+1, H, W) physical units, reference (H, W) -> protocol PSNR per step (T+1,)."""
    lo, hi = metric_window(modality, reference)
    ref = (torch.from_numpy(reference).double().clamp(lo, hi) - lo) / (hi - lo)
    x = (trajectory.double().clamp(lo, hi) - lo) / (hi - lo)
    mse = (x - ref).pow(2).flatten(1).mean(1).clamp_min(1e-20)
    return (-10.0 * torch.log10(mse)).numpy()


@torch.no_grad()
def scan_trajectory(model: DURR, degraded: np.ndarray):
    """Physical-unit estimates (T+1, H, W) up to the cap, and each policy-visible state's features (T+1, F)."""
    y_phys = torch.from_numpy(degraded)[None, None]
    scale = robust_scale(y_phys, model.config.modality)
    y = to_model(y_phys, scale).contiguous(memory_format=torch.channels_last)
    a = model.level_factor(y)  # as DURR.rollout does
    xs = model.to(memory_format=torch.channels_last).unroll(y * a, model.config.max_steps)
    feats = trajectory_features(xs, y * a)[0]
    return from_model(torch.cat(xs) / a, scale, model.config.modality)[:, 0], feats


def _policy_stop(model: DURR, feats: torch.Tensor) -> int:
    """The step ``DURR.rollout`` stops at in policy mode, from the features (T+1, F) of a whole trajectory."""
    return int(policy_stops(model.policy, feats[None])[0])


def evaluate_heldout(contenders: list[Contender], images: list[np.ndarray], spacings: list[float],
                     degradation, levels: list[float], seed: int = 0, progress: bool = True) -> list[dict]:
    """Mean PSNR and steps of each contender at each level.

    images : held-out clean slices (H, W) float32, physical units. Returns rows
    {"level", "method", "psnr", "steps", "n"}, plus a "degraded input" row per level.
    """
    modality = contenders[0].model.config.modality
    # contenders whose models share one restoration unit share its trajectory
    restorers = {id(c.model.unit): c.model.eval() for c in contenders}
    scores: dict[tuple[float, str], list[tuple[float, int]]] = {}
    jobs = [(lv, i) for lv in levels for i in range(len(images))]
    for level, i in tqdm(jobs, desc="held-out evaluation", unit="slice", disable=not progress):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + i * 7919 + int(round(level * 1000)))
        clean = torch.from_numpy(images[i])[None, None]
        out = degradation(clean, float(level), generator=generator, spacing_mm=spacings[i])
        degraded, reference = out.noisy[0, 0].numpy(), out.reference[0, 0].numpy()
        runs = {key: scan_trajectory(m, degraded) for key, m in restorers.items()}
        for c in contenders:
            traj, feats = runs[id(c.model.unit)]
            psnr = psnr_per_step(traj, reference, modality)
            step = {"policy": lambda: _policy_stop(c.model, feats), "fixed": lambda: min(c.steps, len(psnr) - 1),
                    "oracle": lambda: int(np.argmax(psnr))}[c.rule]()
            scores.setdefault((level, c.label), []).append((float(psnr[step]), step))
        scores.setdefault((level, "degraded input"), []).append((float(psnr[0]), 0))
    rows = []
    for (level, label), vals in scores.items():
        rows.append({"level": level, "method": label, "psnr": float(np.mean([v[0] for v in vals])),
                     "steps": float(np.mean([v[1] for v in vals])), "n": len(vals)})
    return rows


def shortfalls(rows: list[dict], candidate: str = "new policy", tolerance_db: float = 0.1) -> list[dict]:
    """Levels where ``candidate`` scores more than ``tolerance_db`` below another learned rule.

    rows : ``evaluate_heldout`` rows. Compared with every method except the oracle and the
    degraded input. Returns [{"level", "method", "deficit_db"}], the worst method per level.
    """
    mine = {r["level"]: r["psnr"] for r in rows if r["method"] == candidate}
    worst: dict[float, dict] = {}
    for r in rows:
        if r["method"] in (candidate, "oracle stop", "degraded input") or r["level"] not in mine:
            continue
        deficit = r["psnr"] - mine[r["level"]]
        if deficit > tolerance_db and deficit > worst.get(r["level"], {}).get("deficit_db", 0.0):
            worst[r["level"]] = {"level": r["level"], "method": r["method"], "deficit_db": deficit}
    return [worst[lv] for lv in sorted(worst)]


def table_markdown(rows: list[dict], seen: tuple[float, float], level_order: list[float]) -> str:
    """Rows of ``evaluate_heldout`` as a markdown table: methods down, levels across (PSNR dB / mean steps)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lo, hi = min(seen), max(seen)
    head = [f"{lv:g} ({'seen' if lo <= lv <= hi else 'unseen'})" for lv in level_order]
    lines = ["| method | " + " | ".join(head) + " |", "|---|" + "---|" * len(level_order)]
    cell = {(r["method"], r["level"]): r for r in rows}
    for m in methods:
        vals = []
        for lv in level_order:
            r = cell.get((m, lv))
            vals.append("" if r is None else (f"{r['psnr']:.2f}" if m == "degraded input"
                                              else f"{r['psnr']:.2f} / {r['steps']:.1f}"))
        lines.append(f"| {m} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
