"""The benchmark: every method of PROTOCOL.md section 5 on seen and unseen levels.

One run, for one degradation family:

1. Tune (``build_tuning_set``): a few *train*-split images, degraded at seen levels only,
   centre-cropped to at most 192 x 192; classical parameters are fitted at one seen level
   (the middle of the seen range) and the DURR fixed step count falls back to the policy's
   mean there (``durr.bench.methods``). The test images are not touched.
2. Test: each test image is degraded at each level with the seed ``level_seed(...)`` (a hash
   of family, split, source, index and level: reruns and subsets reproduce the same noise),
   every method restores it from the degraded image alone (the oracle alone also gets the
   reference), and the protocol metrics score it against the reference (``durr.metrics``;
   for CT the full-dose FBP, not the phantom).
3. ``durr.bench.report`` and ``durr.bench.plots`` write the table, CSV, summary and plots.

Example (tiny; tuning and test images should differ, see the tests)::

    from durr.bench.benchmark import BenchImage, run_benchmark
    from durr.bench.report import write_results
    test = [BenchImage(np.full((32, 32), 0.5, np.float32), 1.0, "flat", 0)]
    train = [BenchImage(np.full((32, 32), 0.25, np.float32), 1.0, "flat-train", 0)]
    result = run_benchmark("gaussian", test, train, levels=[20, 45], methods=["degraded", "tv"])
    write_results(result, "bench_results/tiny")
"""

from __future__ import annotations

import os
import platform
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from durr.bench.methods import (METHODS, Method, MethodInput, ModelBundle, TuningPair, TuningSet, call_method,
                                make_methods, method_names)

__all__ = ["BenchImage", "BenchmarkResult", "DEFAULT_SEEN_LEVELS", "DEFAULT_MAX_IMAGES", "run_benchmark",
           "parse_levels", "is_seen", "level_seed", "select_images", "build_tuning_set", "images_from_slices",
           "noisier_order", "EXAMPLE_METHODS"]

# Seen levels tested by default: both ends and the middle of the seen range (PROTOCOL.md 3).
# The middle one is where classical parameters are tuned.
DEFAULT_SEEN_LEVELS = {"gaussian": (5.0, 20.0, 35.0), "mr-rician": (1.0, 3.0, 5.0), "ct-lowdose": (0.5, 0.25, 0.1),
                       "ct-sparseview": (360.0, 180.0, 120.0), "mr-undersample": (2.0, 3.0, 4.0)}
TUNE_LEVEL = {"gaussian": 20.0, "mr-rician": 3.0, "ct-lowdose": 0.25, "ct-sparseview": 180.0, "mr-undersample": 3.0}
# Test images by default, sized so that one family runs in <= 15 min on 2 CPU cores (docs/benchmark.md).
DEFAULT_MAX_IMAGES = {"gaussian": 3, "mr-rician": 8, "ct-lowdose": 3, "ct-sparseview": 3, "mr-undersample": 8}
TUNING_IMAGES = 3
TUNING_CROP = 192
# Panels of the example figure, besides the degraded input and the reference.
EXAMPLE_METHODS = ("bm3d", "fixed-cnn", "durr-policy")


@dataclass(frozen=True)
class BenchImage:
    """A clean test or tuning image: (H, W) float32 physical units, its spacing and origin."""

    image: np.ndarray
    spacing_mm: float
    source_id: str
    index: int


@dataclass
class BenchmarkResult:
    """Everything a run produced; ``records`` holds one dict per (method, image, level)."""

    family: str
    modality: str
    split: str
    levels: list[float]
    seen: list[bool]
    seen_range: tuple[float, float]
    level_unit: str
    methods: list[dict]
    records: list[dict]
    example: dict | None = None
    meta: dict = field(default_factory=dict)


# --- levels, seeds, images -------------------------------------------------------------------

def is_seen(level: float, seen_range: Sequence[float]) -> bool:
    lo, hi = seen_range
    return lo - 1e-9 <= level <= hi + 1e-9


def noisier_order(levels: Sequence[float], degradation) -> list[float]:
    """Levels from the mildest to the noisiest (CT: high dose first; else low level first)."""
    lower_is_noisier = bool(degradation.unseen) and max(degradation.unseen) < degradation.seen[0]
    return sorted(set(float(v) for v in levels), reverse=lower_is_noisier)


def default_seen_levels(family: str, degradation) -> tuple[float, ...]:
    if family in DEFAULT_SEEN_LEVELS:
        return DEFAULT_SEEN_LEVELS[family]
    lo, hi = degradation.seen
    return (float(lo), (lo + hi) / 2.0, float(hi))


def default_tune_level(family: str, degradation) -> float:
    lo, hi = degradation.seen
    return TUNE_LEVEL.get(family, (lo + hi) / 2.0)


def parse_levels(spec: str | Sequence[float] | None, family: str, degradation) -> list[float]:
    """``"seen,unseen"`` (the default), ``"seen"``, ``"unseen"``, numbers, or a mix; ordered
    from the mildest to the noisiest."""
    if spec is None:
        spec = "seen,unseen"
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    levels: list[float] = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if item == "seen":
            levels.extend(default_seen_levels(family, degradation))
        elif item == "unseen":
            levels.extend(float(v) for v in degradation.unseen)
        elif item != "":
            try:
                value = float(item)
            except ValueError:
                raise ValueError(f"--levels: {item!r} is neither 'seen', 'unseen' nor a number") from None
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"--levels: level {item!r} must be a positive number")
            levels.append(value)
    if not levels:
        raise ValueError("--levels: no level given")
    return noisier_order(levels, degradation)


def level_seed(family: str, split: str, image: BenchImage, level: float) -> int:
    """The noise seed of one (image, level): a stable hash, independent of run order and subset."""
    key = f"{family}|{split}|{image.source_id}|{image.index}|{float(level):.6g}"
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def images_from_slices(slices) -> list[BenchImage]:
    """``durr.data.corpus.Slices`` -> BenchImages (index = position in the split)."""
    return [BenchImage(np.asarray(a, dtype=np.float32), float(sp), sid, i)
            for i, (a, sp, sid) in enumerate(zip(slices.images, slices.spacings, slices.source_ids))]


def select_images(images: list[BenchImage], max_images: int | None) -> list[BenchImage]:
    """At most ``max_images``, shared round-robin across sources, evenly spaced within one.

    A source with n slices of which k are taken contributes slices ``int((j + 0.5) n / k)``:
    the middle slice when k = 1. Returned in split order.
    """
    if max_images is None or max_images >= len(images):
        return list(images)
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    by_source: dict[str, list[BenchImage]] = {}
    for im in images:
        by_source.setdefault(im.source_id, []).append(im)
    counts = dict.fromkeys(by_source, 0)
    left = max_images
    while left:
        for sid, members in by_source.items():
            if left and counts[sid] < len(members):
                counts[sid] += 1
                left -= 1
    chosen = []
    for sid, members in by_source.items():
        n, k = len(members), counts[sid]
        chosen.extend(members[int((j + 0.5) * n / k)] for j in range(k))
    return sorted(chosen, key=lambda im: im.index)


# --- degradation and tuning --------------------------------------------------------------------

def degrade_image(degradation, image: BenchImage, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, reference), each (H, W) float32 physical units."""
    clean = torch.from_numpy(np.ascontiguousarray(image.image, dtype=np.float32))[None, None]
    out = degradation(clean, level, generator=torch.Generator().manual_seed(int(seed)), spacing_mm=image.spacing_mm)
    return (out.noisy[0, 0].detach().float().cpu().numpy(), out.reference[0, 0].detach().float().cpu().numpy())


def _centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(a[top:top + size, left:left + size])


def build_tuning_set(degradation, family: str, images: list[BenchImage], tune_level: float,
                     levels: Sequence[float], crop: int = TUNING_CROP) -> TuningSet:
    """Degrade tuning images (train split) at ``levels`` (which must all be seen) and crop them.

    Raises ValueError for an unseen level, before degrading anything.
    """
    seen_range = tuple(float(v) for v in degradation.seen)
    levels = sorted(set(float(v) for v in levels) | {float(tune_level)})
    bad = [v for v in levels if not is_seen(v, seen_range)]
    if bad:
        raise ValueError(f"tuning may use seen levels only ({seen_range[0]:g} to {seen_range[1]:g}); got {bad}")
    pairs = []
    for im in images:
        for level in levels:
            noisy, ref = degrade_image(degradation, im, level, level_seed(family, "tune", im, level))
            pairs.append(TuningPair(MethodInput(_centre_crop(noisy, crop), degradation.modality, im.spacing_mm),
                                    _centre_crop(ref, crop), level, im.source_id))
    return TuningSet(pairs, float(tune_level), seen_range, degradation.modality)


# --- the run -------------------------------------------------------------------------------------

def _score(restored: np.ndarray, reference: np.ndarray, modality: str) -> dict:
    from durr.metrics import score

    s = score(restored, reference, modality)
    out = {"psnr": float(s["psnr"]), "ssim": float(s["ssim"])}
    if modality == "CT":  # the protocol's secondary CT range: the soft-tissue window
        soft = score(restored, reference, modality, window="soft-tissue")
        out.update(psnr_soft=float(soft["psnr"]), ssim_soft=float(soft["ssim"]))
    return out


def _environment(device: torch.device) -> dict:
    import skimage

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device": f"{device.type} ({name})", "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "scikit-image": skimage.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run_benchmark(family: str, images: list[BenchImage], tuning_images: list[BenchImage],
                  levels: str | Sequence[float] | None = None, methods: Sequence[str] | None = None,
                  model: str | Path | ModelBundle | None = None, device: str = "cpu", split: str = "dev",
                  tune_level: float | None = None, example_level: float | None = None,
                  degradation=None, progress: bool = False) -> BenchmarkResult:
    """Run the benchmark of one family.

    images : the test images (clean, physical units); tuning_images : train-split images,
        used at seen levels only. levels : see ``parse_levels``. methods : names from
        ``durr.bench.methods.METHODS`` (default all). model : a model folder or name (default
        ``models/<family>``), or a loaded ``ModelBundle``. degradation : the family's
        degradation object (default ``durr.degrade.get_degradation(family)``).
    """
    if degradation is None:
        from durr.degrade import get_degradation

        degradation = get_degradation(family)
    if not images:
        raise ValueError("no test images")
    if not tuning_images:
        raise ValueError("no tuning images")
    modality = degradation.modality
    seen_range = tuple(float(v) for v in degradation.seen)
    levels = parse_levels(levels, family, degradation)
    names = list(dict.fromkeys(methods)) if methods else method_names()
    dev = torch.device(device)
    t_start, cpu_start = time.perf_counter(), time.process_time()

    bundle = None
    if any(METHODS[n].learned for n in names if n in METHODS):
        if model is None:
            from durr.infer.model_io import models_root

            model = models_root() / family
        bundle = model if isinstance(model, ModelBundle) else ModelBundle.load(model, modality, dev)
    chosen = make_methods(names, bundle)
    status = {m.name: {"name": m.name, "label": m.label, "reason": m.unavailable(), "params": {}} for m in chosen}
    runnable = [m for m in chosen if status[m.name]["reason"] is None]

    # 1. tuning: train split, seen levels only
    tune_level = default_tune_level(family, degradation) if tune_level is None else float(tune_level)
    tuning_levels = [tune_level]
    if any(m.name == "durr-fixed" and "fixed_steps" not in m.bundle.config for m in runnable):
        # the fixed step count falls back to the policy's mean over every seen level of the table
        tuning_levels = [v for v in default_seen_levels(family, degradation) if is_seen(v, seen_range)]
    needs_tuning = [m for m in runnable if type(m).tune is not Method.tune]
    t0 = time.perf_counter()
    tuning = None
    if needs_tuning:
        tuning = build_tuning_set(degradation, family, tuning_images, tune_level, tuning_levels)
        for m in needs_tuning:
            status[m.name]["params"] = m.tune(tuning)
            status[m.name]["label"] = m.label_after_tuning()
    tuning_seconds = time.perf_counter() - t0

    # 2. test: every image at every level, every method from the degraded image alone
    unseen = [v for v in levels if not is_seen(v, seen_range)]
    if example_level is None:
        example_level = unseen[0] if unseen else levels[-1]
    example = None
    records: list[dict] = []
    jobs = [(level, im) for level in levels for im in images]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) * len(runnable), desc=f"benchmark {family}", unit="run")
    for level, im in jobs:
        seed = level_seed(family, split, im, level)
        noisy, reference = degrade_image(degradation, im, level, seed)
        inp = MethodInput(noisy, modality, im.spacing_mm)
        keep = level == example_level and im is images[0]
        if keep:
            example = {"level": level, "source_id": im.source_id, "index": im.index, "degraded": noisy,
                       "reference": reference, "outputs": {}}
        for m in runnable:
            t = time.perf_counter()
            out = call_method(m, inp, reference)
            seconds = time.perf_counter() - t
            scores = _score(out.image, reference, modality)
            records.append({"method": m.name, "image": im.index, "source_id": im.source_id,
                            "height": im.image.shape[0], "width": im.image.shape[1], "spacing_mm": im.spacing_mm,
                            "level": level, "seen": is_seen(level, seen_range), "seed": seed, **scores,
                            "seconds": seconds, "steps": out.steps})
            if keep and (m.name in EXAMPLE_METHODS or m.name == "degraded"):
                example["outputs"][m.name] = {"image": out.image, "psnr": scores["psnr"], "steps": out.steps}
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()

    meta = {**_environment(dev), "tuning_level": tune_level, "tuning_levels": sorted(set(tuning_levels) | {tune_level}),
            "tuning_images": [{"source_id": im.source_id, "index": im.index} for im in tuning_images],
            "tuning_crop": TUNING_CROP, "tuning_seconds": round(tuning_seconds, 2),
            "test_images": [{"source_id": im.source_id, "index": im.index, "shape": list(im.image.shape),
                             "spacing_mm": im.spacing_mm} for im in images],
            "model": str(bundle.folder) if bundle is not None and bundle.folder is not None else None,
            "total_seconds": round(time.perf_counter() - t_start, 1),
            "total_cpu_seconds": round(time.process_time() - cpu_start, 1)}
    return BenchmarkResult(family, modality, split, levels, [is_seen(v, seen_range) for v in levels], seen_range,
                           getattr(degradation, "level_unit", ""), [status[m.name] for m in chosen], records,
                           example, meta)


def per_level_stats(result: BenchmarkResult) -> dict:
    """{method: {level: {"psnr", "ssim", "psnr_std", "n", "steps"}}} means over images."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in result.records:
        groups[(r["method"], r["level"])].append(r)
    stats: dict = defaultdict(dict)
    for (method, level), rows in groups.items():
        psnr = np.array([r["psnr"] for r in rows])
        steps = [r["steps"] for r in rows if r["steps"] is not None]
        entry = {"psnr": float(psnr.mean()), "psnr_std": float(psnr.std()), "ssim": float(np.mean([r["ssim"] for r in rows])),
                 "n": len(rows), "steps": float(np.mean(steps)) if steps else None}
        if "psnr_soft" in rows[0]:
            entry["psnr_soft"] = float(np.mean([r["psnr_soft"] for r in rows]))
            entry["ssim_soft"] = float(np.mean([r["ssim_soft"] for r in rows]))
        stats[method][level] = entry
    return dict(stats)


def per_method_stats(result: BenchmarkResult) -> dict:
    """{method: {"seconds_median", "steps_mean"}} over every image and level."""
    out = {}
    for m in result.methods:
        rows = [r for r in result.records if r["method"] == m["name"]]
        if not rows:
            continue
        steps = [r["steps"] for r in rows if r["steps"] is not None]
        out[m["name"]] = {"seconds_median": float(np.median([r["seconds"] for r in rows])),
                          "steps_mean": float(np.mean(steps)) if steps else None}
    return out
