"""Benchmark plots (matplotlib, Agg): PSNR and steps against level, and example slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from durr.bench.benchmark import BenchmarkResult, per_level_stats
from durr.bench.report import LEVEL_NAMES, format_level

__all__ = ["plot_psnr", "plot_steps", "plot_examples", "write_plots"]

SHORT = {"degraded": "degraded", "nlm": "NLM", "tv": "TV (tuned w)", "tv-adaptive": "TV (w = c σ̂)",
         "wavelet": "wavelet", "bm3d": "BM3D", "fixed-cnn": "fixed CNN", "durr-fixed": "DURR fixed",
         "durr-policy": "DURR policy", "durr-sure": "DURR SURE stop",
         "durr-oracle": "DURR oracle"}
STYLE = {"degraded": ("0.5", ":"), "durr-policy": ("C3", "-"), "durr-sure": ("C4", "-"), "durr-fixed": ("C1", "--"),
         "durr-oracle": ("C3", ":"), "fixed-cnn": ("C0", "-."), "bm3d": ("C2", "-")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _level_axis(ax, result: BenchmarkResult) -> None:
    """Shade the seen range; CT dose on a log axis, inverted so that noise grows to the right."""
    lo, hi = result.seen_range
    ax.axvspan(lo, hi, color="0.85", zorder=0, label="seen range")
    if result.family == "ct-lowdose" or (result.levels and max(result.levels) / min(result.levels) > 8):
        ax.set_xscale("log")
    lower_is_noisier = len(result.levels) > 1 and result.levels[0] > result.levels[-1]
    left, right = min(result.levels + [lo]), max(result.levels + [hi])
    pad = (right / left) ** 0.05 if ax.get_xscale() == "log" else 0.05 * (right - left or 1)
    limits = (left / pad, right * pad) if ax.get_xscale() == "log" else (left - pad, right + pad)
    ax.set_xlim(*(limits[::-1] if lower_is_noisier else limits))
    ax.set_xticks(result.levels)
    ax.set_xticklabels([format_level(v) + ("" if s else "\nunseen") for v, s in zip(result.levels, result.seen)],
                       fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(LEVEL_NAMES.get(result.family, result.level_unit or "level"))
    ax.grid(alpha=0.3)


def plot_psnr(result: BenchmarkResult, path: Path) -> Path:
    """Mean PSNR against level, one line per available method, seen range shaded."""
    plt = _pyplot()
    stats = per_level_stats(result)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, m in enumerate(result.methods):
        s = stats.get(m["name"])
        if not s:
            continue
        xs = [v for v in result.levels if v in s]
        color, ls = STYLE.get(m["name"], (f"C{(i + 4) % 10}", "-"))
        ax.plot(xs, [s[v]["psnr"] for v in xs], ls, color=color, marker="o", ms=4, label=SHORT.get(m["name"], m["name"]))
    _level_axis(ax, result)
    ax.set_ylabel("PSNR (dB), mean over images")
    missing = [SHORT.get(m["name"], m["name"]) for m in result.methods if m["reason"] is not None]
    title = f"{result.family}: PSNR against level"
    if missing:
        title += f"\n(not available: {', '.join(missing)})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_steps(result: BenchmarkResult, path: Path) -> Path:
    """Mean steps taken against level (DURR fixed, policy and oracle), with the image spread."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    drawn = False
    for m in result.methods:
        rows = [r for r in result.records if r["method"] == m["name"] and r["steps"] is not None]
        if not rows:
            continue
        xs, means, lows, highs = [], [], [], []
        for v in result.levels:
            steps = [r["steps"] for r in rows if r["level"] == v]
            if steps:
                xs.append(v)
                means.append(np.mean(steps))
                lows.append(np.mean(steps) - np.min(steps))
                highs.append(np.max(steps) - np.mean(steps))
        color, ls = STYLE.get(m["name"], ("C5", "-"))
        ax.errorbar(xs, means, yerr=[lows, highs], fmt="o" + ls, color=color, capsize=3, ms=4,
                    label=SHORT.get(m["name"], m["name"]))
        drawn = True
    _level_axis(ax, result)
    ax.set_ylabel("steps taken (mean; bars: min to max)")
    ax.set_title(f"{result.family}: restoration steps against level", fontsize=10)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no DURR model available", transform=ax.transAxes, ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _display_range(result: BenchmarkResult, reference: np.ndarray) -> tuple[float, float, str]:
    if result.modality == "CT":
        return -160.0, 240.0, "soft-tissue window [-160, 240] HU"
    if result.modality == "MR":
        return 0.0, float(np.percentile(reference, 99.5)), "[0, 99.5th percentile]"
    return 0.0, 1.0, "[0, 1]"


def plot_examples(result: BenchmarkResult, path: Path) -> Path:
    """Degraded, BM3D, fixed CNN, DURR (policy) and the reference at one level (an unseen one)."""
    plt = _pyplot()
    ex = result.example
    panels = [("degraded", "degraded"), ("bm3d", "BM3D"), ("fixed-cnn", "fixed CNN"), ("durr-policy", "DURR policy")]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.0 * (len(panels) + 1), 3.4))
    if ex is None:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0, 0.5, "no example recorded", transform=axes[0].transAxes)
    else:
        vmin, vmax, window = _display_range(result, ex["reference"])
        reasons = {m["name"]: m["reason"] for m in result.methods}
        for ax, (name, title) in zip(axes, panels):
            out = ex["outputs"].get(name)
            ax.axis("off")
            if out is None:
                why = reasons.get(name) or "not run"
                ax.text(0.5, 0.5, f"{title}\nnot available:\n{why}", transform=ax.transAxes, ha="center", va="center",
                        fontsize=7, wrap=True)
                continue
            ax.imshow(out["image"], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            steps = f", {out['steps']} steps" if out.get("steps") is not None else ""
            ax.set_title(f"{title}\n{out['psnr']:.2f} dB{steps}", fontsize=9)
        ax = axes[-1]
        ax.imshow(ex["reference"], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.axis("off")
        ax.set_title("reference (full-dose FBP)" if result.modality == "CT" else "clean", fontsize=9)
        seen = "seen" if result.seen[result.levels.index(ex["level"])] else "unseen"
        fig.suptitle(f"{result.family}, level {format_level(ex['level'])} ({seen}), image {ex['source_id']} "
                     f"#{ex['index']}; display {window}; PSNR on the protocol range", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_plots(result: BenchmarkResult, out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [plot_psnr(result, out / "psnr_vs_level.png"), plot_steps(result, out / "steps_vs_level.png"),
            plot_examples(result, out / "examples.png")]
