"""Pictures for the page: display windows, 8-bit images, the stop-probability plot (no streamlit here)."""

from __future__ import annotations

import numpy as np

# CT display windows as (level, width) in HU.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "soft tissue": (40.0, 400.0),
    "brain": (40.0, 80.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
}
DEFAULT_PERCENTILES = (0.5, 99.5)
LEVEL_UNITS = {"gaussian": "/255", "mr-rician": "% of r", "ct-lowdose": "dose fraction", "ct-sparseview": "views",
               "mr-undersample": "x acceleration", "blur": "px blur"}


def ct_window(preset: str) -> tuple[float, float]:
    """(low, high) HU of a CT preset."""
    level, width = CT_WINDOWS[preset]
    return level - width / 2.0, level + width / 2.0


def percentile_window(image: np.ndarray, low: float = DEFAULT_PERCENTILES[0],
                      high: float = DEFAULT_PERCENTILES[1]) -> tuple[float, float]:
    """(low, high) values at two percentiles of ``image`` (MR and other images); never empty."""
    finite = np.asarray(image, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_uint8(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``window`` (low, high) linearly to 0..255, clipping outside; NaN shows as black."""
    lo, hi = window
    scaled = (np.asarray(image, dtype=np.float64) - lo) / max(hi - lo, 1e-12)
    scaled = np.nan_to_num(scaled, nan=0.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def difference_view(diff: np.ndarray, half_range: float | None = None,
                    floor: float = 1e-6) -> tuple[np.ndarray, float]:
    """8-bit view of a signed difference: mid-grey is 0, white +half_range, black -half_range.

    half_range defaults to the 99th percentile of ``|diff|`` (so the residual noise is visible),
    but at least ``floor`` (so rounding noise of an unchanged image stays grey).
    Returns the image and the half range used.
    """
    diff = np.asarray(diff, dtype=np.float64)
    if half_range is None:
        magnitude = np.abs(diff[np.isfinite(diff)])
        half_range = float(np.percentile(magnitude, 99.0)) if magnitude.size else 0.0
    half_range = max(half_range, floor, 1e-12)
    return to_uint8(diff, (-half_range, half_range)), half_range


def steps_text(count: int) -> str:
    """``"1 step"``, ``"3 steps"``."""
    return f"{count} step" if int(count) == 1 else f"{count} steps"


def stop_probability_figure(stop_prob: np.ndarray | None, chosen: int, oracle: int | None = None,
                            threshold: float = 0.5):
    """Matplotlib figure: the policy's stop probability at each step, the chosen terminal time marked.

    stop_prob : (T+1,) probability of stopping at steps 0..T (NaN after the stop), or None.
    chosen : the policy's terminal time (steps executed); oracle : the oracle's, if known.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.0, 2.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if stop_prob is not None:
        probs = np.asarray(stop_prob, dtype=np.float64)
        steps = np.arange(probs.size)
        valid = np.isfinite(probs)
        ax.plot(steps[valid], probs[valid], marker="o", markersize=3, linewidth=1.5, color="C0",
                label="stop probability")
    ax.axhline(threshold, color="0.6", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    ax.axvline(chosen, color="C3", linewidth=1.5, label=f"policy stop: {steps_text(chosen)}")
    if oracle is not None:
        ax.axvline(oracle, color="C2", linestyle="--", linewidth=1.5, label=f"oracle stop: {steps_text(oracle)}")
    ax.set_xlabel("step n")
    ax.set_ylabel("P(stop at n)")
    ax.set_ylim(-0.03, 1.03)
    last = max(chosen, oracle or 0, 1, 0 if stop_prob is None else len(stop_prob) - 1)
    ax.set_xlim(-0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def format_level(family: str, level: float, seen: bool) -> str:
    """"9 % of r (unseen)", "0.05 dose fraction (unseen)"."""
    unit = LEVEL_UNITS.get(family, "")
    text = f"{level:g} {unit}".strip()
    return text if seen else f"{text} (unseen)"


def summary(scan) -> str:
    """One line describing a scan: shape, spacing, modality, format."""
    shape = " x ".join(str(n) for n in scan.array.shape)
    spacing = " x ".join(f"{s:.3g}" for s in scan.spacing)
    lo, hi = float(np.min(scan.array)), float(np.max(scan.array))
    unit = " HU" if scan.modality == "CT" else ""
    return (f"{scan.modality}, {scan.source_format}, {shape} voxels, spacing {spacing} mm, "
            f"values {lo:.4g} to {hi:.4g}{unit}")
