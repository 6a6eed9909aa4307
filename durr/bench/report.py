"""Write a benchmark result: ``table.md``, ``per_image.csv`` and ``summary.json``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from durr.bench.benchmark import BenchmarkResult, per_level_stats, per_method_stats

__all__ = ["write_results", "write_table", "write_csv", "write_summary", "format_level", "markdown_table"]

CSV_FIELDS = ["family", "split", "method", "image", "source_id", "height", "width", "spacing_mm", "level", "seen",
              "seed", "psnr", "ssim", "psnr_soft", "ssim_soft", "seconds", "steps"]
LEVEL_NAMES = {"ct-lowdose": "dose fraction d", "mr-rician": "noise s (% of the 99.5th percentile)",
               "gaussian": "noise sigma (/255)"}


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` next to ``path`` and move it into place (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def format_level(level: float) -> str:
    return f"{level:g}"


def _seconds(s: float) -> str:
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def _cell(stats: dict | None, bold: bool, psnr_key: str = "psnr", ssim_key: str = "ssim") -> str:
    if stats is None:
        return "—"
    text = f"{stats[psnr_key]:.2f} / {stats[ssim_key]:.3f}"
    return f"**{text}**" if bold else text


def markdown_table(result: BenchmarkResult, psnr_key: str = "psnr", ssim_key: str = "ssim",
                   with_cost: bool = True) -> str:
    """Rows = methods, columns = levels (seen/unseen marked), cells = mean PSNR / mean SSIM.

    The best PSNR of each column among the methods that do not see the clean image is bold.
    """
    stats, cost = per_level_stats(result), per_method_stats(result)
    header = ["method"] + [f"{format_level(v)} ({'seen' if s else '**unseen**'})" for v, s in zip(result.levels, result.seen)]
    if with_cost:
        header += ["s / image (median)", "mean steps"]
    best = {}
    for level in result.levels:
        values = [(stats[m["name"]][level][psnr_key], m["name"]) for m in result.methods
                  if m["reason"] is None and m["name"] != "durr-oracle" and level in stats.get(m["name"], {})]
        best[level] = max(values)[1] if values else None
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for m in result.methods:
        name = m["name"]
        if m["reason"] is not None:
            cells = [f"not available: {m['reason']}"] + ["—"] * (len(result.levels) - 1)
            extra = ["—", "—"] if with_cost else []
        else:
            cells = [_cell(stats.get(name, {}).get(level), best[level] == name, psnr_key, ssim_key)
                     for level in result.levels]
            c = cost.get(name, {})
            seconds = c.get("seconds_median")
            steps = c.get("steps_mean")
            extra = [_seconds(seconds) if seconds is not None else "—",
                     f"{steps:.1f}" if steps is not None else "—"] if with_cost else []
        lines.append("| " + " | ".join([m["label"]] + cells + extra) + " |")
    return "\n".join(lines)


def _params_text(result: BenchmarkResult) -> list[str]:
    unit = LEVEL_NAMES.get(result.family, result.level_unit or "level")
    out = []
    for m in result.methods:
        p = m["params"]
        if not p or m["reason"] is not None:
            continue
        if "weight" in p:
            out.append(f"- {m['label']}: weight {p['weight']:g} (of the metric range)")
        elif "c" in p:
            out.append(f"- {m['label']}: c = {p['c']:g}")
        elif "steps" in p:
            out.append(f"- {m['label']}: {p['steps']} steps ({p['from']})")
    if out:
        meta = result.meta
        out.insert(0, f"Tuned once at the seen level {format_level(meta['tuning_level'])} ({unit}) on "
                      f"{len(meta['tuning_images'])} train-split image(s) (centre {meta['tuning_crop']} px crops), "
                      "never on the test images or an unseen level:")
    return out


def write_table(result: BenchmarkResult, path: Path, command: str | None = None) -> Path:
    """``table.md``: the header states data, levels, device and threads; then the table."""
    meta = result.meta
    sources = sorted({im["source_id"] for im in meta["test_images"]})
    unseen = [format_level(v) for v, s in zip(result.levels, result.seen) if not s]
    lines = [f"# Benchmark: `{result.family}` ({result.modality}), {result.split} split", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"- Test images: {len(meta['test_images'])} from {', '.join(sources)}.",
        f"- Levels: {LEVEL_NAMES.get(result.family, result.level_unit or 'level')}; seen (training) range "
        f"{format_level(result.seen_range[0])} to {format_level(result.seen_range[1])}; unseen columns: "
        f"{', '.join(unseen) or 'none'}.",
        f"- Cells: mean PSNR (dB) / mean SSIM over images (PROTOCOL.md section 4"
        + ("; CT: HU clipped to [-1000, 1000], data range 2000)." if result.modality == "CT" else ")."),
        "  Bold: the best PSNR of the column among methods that never see the clean image.",
        f"- Device: {meta['device']}, torch threads: {meta['torch_threads']} (of {meta['cpu_count']} CPUs); "
        "time: median wall-clock seconds per image over all images and levels; steps: mean restoration steps.",
        "",
        markdown_table(result),
        "",
    ]
    params = _params_text(result)
    if params:
        lines += params + [""]
    if result.modality == "CT":
        lines += ["Secondary: soft-tissue window [-160, 240] HU (data range 400), PSNR / SSIM:", "",
                  markdown_table(result, "psnr_soft", "ssim_soft", with_cost=False), ""]
    lines.append(f"Total run time: {meta['total_seconds']:.0f} s wall-clock (tuning {meta['tuning_seconds']:.0f} s), "
                 f"{meta.get('total_cpu_seconds', float('nan')):.0f} s CPU time of this process.")
    return atomic_write_text(Path(path), "\n".join(lines) + "\n")


def write_csv(result: BenchmarkResult, path: Path) -> Path:
    """``per_image.csv``: one row per (method, image, level), every number the table comes from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in result.records:
            row = {"family": result.family, "split": result.split, **r}
            for key in ("psnr", "ssim", "psnr_soft", "ssim_soft"):
                if key in row:
                    row[key] = f"{row[key]:.4f}"
            row["seconds"] = f"{row['seconds']:.4f}"
            row["steps"] = "" if row["steps"] is None else row["steps"]
            writer.writerow(row)
    tmp.replace(path)
    return path


def _clean(value):
    """JSON-safe: floats rounded, NaN as null, tuple keys and numpy scalars converted."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, float) else format_level(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "shape") or getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 5)
    return value


def write_summary(result: BenchmarkResult, path: Path, command: str | None = None) -> Path:
    """``summary.json``: settings, environment, tuned parameters and per-level means."""
    stats, cost = per_level_stats(result), per_method_stats(result)
    methods = []
    for m in result.methods:
        entry = {"name": m["name"], "label": m["label"], "available": m["reason"] is None}
        if m["reason"] is not None:
            entry["reason"] = f"not available: {m['reason']}"
        else:
            entry["params"] = m["params"]
            entry.update(cost.get(m["name"], {}))
            entry["per_level"] = stats.get(m["name"], {})
        methods.append(entry)
    summary = {"family": result.family, "modality": result.modality, "split": result.split, "command": command,
               "levels": [{"level": v, "seen": s} for v, s in zip(result.levels, result.seen)],
               "seen_range": list(result.seen_range), "level_unit": result.level_unit,
               "methods": methods, "environment": result.meta}
    return atomic_write_text(Path(path), json.dumps(_clean(summary), indent=2) + "\n")


def write_results(result: BenchmarkResult, out: Path, command: str | None = None) -> list[Path]:
    """Every output of a run into ``out``: table, CSV, summary and the three plots."""
    from durr.bench.plots import write_plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [write_table(result, out / "table.md", command), write_csv(result, out / "per_image.csv"),
            write_summary(result, out / "summary.json", command), *write_plots(result, out)]
