"""The methods of the benchmark (PROTOCOL.md section 5), one small class each, by name.

A method is called with a ``MethodInput``: the degraded image, its modality and its pixel
spacing, and nothing else. The clean image (or, for CT, the full-dose reference) is handed
only to a method that declares ``needs_reference = True``; the one such method is the oracle
stop, an upper bound by construction. ``durr.bench.benchmark`` is the only caller and keeps
to this rule (``call_method``).

Parameters are tuned once, before the test images are seen, on a ``TuningSet``: pairs cut
from the *train* split and degraded at *seen* levels only (its constructor refuses anything
else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from durr.bench import classical
from durr.control.normalize import from_model, robust_scale, to_model
from durr.control.sure import WHITE_NOISE_FAMILIES

__all__ = ["MethodInput", "MethodOutput", "TuningPair", "TuningSet", "Method", "ModelBundle", "METHODS",
           "method_names", "make_methods", "call_method", "metric_space"]


@dataclass(frozen=True)
class MethodInput:
    """Everything a method may see: ``degraded`` (H, W) float32 in physical units."""

    degraded: np.ndarray
    modality: str
    spacing_mm: float


@dataclass
class MethodOutput:
    """The restored (H, W) float32 image in physical units, and the steps a model took."""

    image: np.ndarray
    steps: int | None = None


@dataclass(frozen=True)
class TuningPair:
    input: MethodInput
    reference: np.ndarray
    level: float
    source_id: str = ""


@dataclass
class TuningSet:
    """Degraded/reference pairs for tuning: train-split images, seen levels only.

    pairs : every pair; ``tune_level`` : the one seen level at which parameters are tuned
    (``pairs_at_tune_level``); the other pairs (seen levels too) serve the fixed-step fallback.
    seen : the family's seen range (lo, hi).
    """

    pairs: list[TuningPair]
    tune_level: float
    seen: tuple[float, float]
    modality: str

    def __post_init__(self):
        lo, hi = self.seen
        bad = sorted({p.level for p in self.pairs if not lo <= p.level <= hi} |
                     ({self.tune_level} if not lo <= self.tune_level <= hi else set()))
        if bad:
            raise ValueError(f"tuning may use seen levels only ({lo:g} to {hi:g}); got {bad}")
        if not self.pairs_at_tune_level():
            raise ValueError(f"no tuning pair at the tuning level {self.tune_level:g}")

    def pairs_at_tune_level(self) -> list[TuningPair]:
        return [p for p in self.pairs if p.level == self.tune_level]

    def mean_psnr(self, restore: Callable[[MethodInput], np.ndarray]) -> float:
        """Mean protocol PSNR of ``restore`` over the pairs at the tuning level."""
        from durr.metrics import score

        return float(np.mean([score(restore(p.input), p.reference, self.modality)["psnr"]
                              for p in self.pairs_at_tune_level()]))


def metric_space(image: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Map physical images onto the protocol's metric range [0, 1] (PROTOCOL.md sections 1, 4).

    window : ``durr.metrics.metric_window(modality, reference)``: CT (-1000, 1000) HU; MR
    (0, 99.5th percentile of the *reference*); other (0, 1). The image is clipped to it and
    mapped linearly onto [0, 1], as ``durr.metrics.score`` does, so the squared error in this
    space is the protocol PSNR's (data range 1) and maximising minus it picks the best-PSNR
    step exactly.
    """
    lo, hi = window
    return (image.clamp(lo, hi) - lo) / (hi - lo)


# --- base classes -----------------------------------------------------------------------------

class Method:
    """A restoration method of the benchmark.

    name : the command-line name; label : the table row. ``unavailable()`` says why the
    method cannot run here (None when it can); ``tune`` fixes parameters on a ``TuningSet``
    and returns them for the summary; ``restore`` restores one ``MethodInput``.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False
    learned: ClassVar[bool] = False

    def unavailable(self) -> str | None:
        return None

    def tune(self, tuning: TuningSet) -> dict:
        return {}

    def label_after_tuning(self) -> str:
        return self.label

    def restore(self, inp: MethodInput) -> MethodOutput:
        raise NotImplementedError


class Degraded(Method):
    name, label = "degraded", "degraded input"

    def restore(self, inp):
        return MethodOutput(np.array(inp.degraded, dtype=np.float32, copy=True))


class Classical(Method):
    """Denoise in the metric window (``classical.to_window``) and map back."""

    uses_sigma: ClassVar[bool] = True

    def denoise(self, u: np.ndarray, sigma: float | None) -> np.ndarray:
        raise NotImplementedError

    def restore(self, inp):
        window = classical.to_window(inp.degraded, inp.modality)
        u = window.forward(inp.degraded)
        sigma = classical.estimate_noise(u) if self.uses_sigma else None
        return MethodOutput(window.inverse(self.denoise(u, sigma)))


class NLM(Classical):
    name, label = "nlm", "NLM (sigma from estimate_sigma)"

    def denoise(self, u, sigma):
        return classical.nlm(u, sigma)


class TVTuned(Classical):
    name, label = "tv", "TV Chambolle (tuned weight)"
    uses_sigma = False

    def __init__(self):
        self.weight: float | None = None

    def denoise(self, u, sigma):
        return classical.tv(u, self.weight)

    def tune(self, tuning):
        def objective(w):
            self.weight = w
            return tuning.mean_psnr(lambda inp: self.restore(inp).image)

        self.weight, tried = classical.grid_search(objective, classical.TV_WEIGHT_GRID)
        return {"weight": self.weight, "tuning_psnr": tried}


class TVAdaptive(Classical):
    name, label = "tv-adaptive", "TV, weight = c * estimate_sigma (tuned c)"

    def __init__(self):
        self.c: float | None = None

    def denoise(self, u, sigma):
        return classical.tv(u, self.c * sigma)

    def tune(self, tuning):
        def objective(c):
            self.c = c
            return tuning.mean_psnr(lambda inp: self.restore(inp).image)

        self.c, tried = classical.grid_search(objective, classical.TV_C_GRID)
        return {"c": self.c, "tuning_psnr": tried}


class Wavelet(Classical):
    name, label = "wavelet", "wavelet BayesShrink"
    uses_sigma = False

    def denoise(self, u, sigma):
        return classical.wavelet(u)


class BM3D(Classical):
    """BM3D with ``sigma_psd = c * estimate_sigma``, ``c`` tuned once like the adaptive TV's."""

    name, label = "bm3d", "BM3D, sigma = c * estimate_sigma (non-commercial)"

    def __init__(self):
        self.c: float | None = None

    def unavailable(self):
        return classical.bm3d_missing_reason()

    def denoise(self, u, sigma):
        return classical.bm3d_denoise(u, self.c * sigma)

    def tune(self, tuning):
        def objective(c):
            self.c = c
            return tuning.mean_psnr(lambda inp: self.restore(inp).image)

        self.c, tried = classical.grid_search(objective, classical.BM3D_C_GRID, refine=1)
        return {"c": self.c, "tuning_psnr": tried}


# --- learned methods --------------------------------------------------------------------------

@dataclass
class ModelBundle:
    """A model folder loaded once for every learned method, or the reason it could not be."""

    folder: Path | None = None
    model: object | None = None          # durr.control.restorer.DURR
    baseline: object | None = None       # durr.control.baseline.FixedDepthCNN or None
    config: dict = field(default_factory=dict)
    reason: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def load(cls, name_or_dir: str | Path, modality: str, device: torch.device | str = "cpu") -> "ModelBundle":
        """Load ``name_or_dir`` (a folder, or a name under ``models/``); never raises."""
        from durr.errors import ModelError
        from durr.infer.model_io import load_baseline, load_model, models_root, read_config, resolve_model_dir

        device = torch.device(device)
        try:
            folder = resolve_model_dir(name_or_dir)
        except ModelError:
            shown = name_or_dir if Path(name_or_dir).is_absolute() or "/" in str(name_or_dir) \
                else models_root() / str(name_or_dir)
            return cls(reason=f"no model at {_short(shown)}", device=device)
        try:
            model, baseline, config = load_model(folder), load_baseline(folder), read_config(folder)
        except ModelError as err:
            return cls(folder=folder, reason=str(err), device=device)
        if model.config.modality != modality:
            return cls(folder=folder, reason=f"the model at {_short(folder)} is for {model.config.modality}, "
                                             f"not {modality}", device=device)
        # channels-last convolutions are 1.5-2x faster on CPU (as in durr.infer.restore.prepare)
        model = model.to(device).to(memory_format=torch.channels_last).eval()
        if baseline is not None:
            baseline = baseline.to(device).to(memory_format=torch.channels_last).eval()
        return cls(folder, model, baseline, config, None, device)


def _short(path) -> str:
    """A path relative to the working directory when it is below it (for table rows)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class Learned(Method):
    learned = True

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle

    def unavailable(self):
        return self.bundle.reason

    def _tensor(self, inp: MethodInput) -> torch.Tensor:
        y = torch.from_numpy(np.ascontiguousarray(inp.degraded, dtype=np.float32))[None, None]
        return y.to(self.bundle.device).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def _numpy(x: torch.Tensor) -> np.ndarray:
        return x[0, 0].float().cpu().numpy()


class FixedCNN(Learned):
    name, label = "fixed-cnn", "fixed-depth CNN"

    def unavailable(self):
        if self.bundle.reason:
            return self.bundle.reason
        if self.bundle.baseline is None:
            return f"no fixed-depth CNN in {_short(self.bundle.folder)}"
        return None

    @torch.no_grad()
    def restore(self, inp):
        y = self._tensor(inp)
        scale = robust_scale(y, inp.modality)
        restored = self.bundle.baseline(to_model(y, scale))
        return MethodOutput(self._numpy(from_model(restored, scale, inp.modality)))


class DURRPolicy(Learned):
    name, label = "durr-policy", "DURR, learned stop (policy)"

    def restore(self, inp):
        out = self.bundle.model.restore(self._tensor(inp), mode="policy")
        return MethodOutput(self._numpy(out.output), int(out.steps[0]))


class DURRFixed(Learned):
    """DURR run for a fixed number of steps.

    The count is ``fixed_steps`` from the model folder's ``config.json`` when present (chosen
    on seen levels at training time); otherwise the rounded mean of the policy's steps on the
    tuning pairs (train split, seen levels), at least 1.
    """

    name, label = "durr-fixed", "DURR, fixed steps"

    def __init__(self, bundle):
        super().__init__(bundle)
        self.steps: int | None = None

    def tune(self, tuning):
        if "fixed_steps" in self.bundle.config:
            self.steps = int(self.bundle.config["fixed_steps"])
            return {"steps": self.steps, "from": "config.json fixed_steps"}
        taken = [int(self.bundle.model.restore(self._tensor(p.input), mode="policy").steps[0]) for p in tuning.pairs]
        self.steps = max(1, int(round(float(np.mean(taken)))))
        levels = sorted({p.level for p in tuning.pairs})
        return {"steps": self.steps, "from": "rounded mean policy steps on the tuning pairs",
                "policy_steps": taken, "levels": levels}

    def label_after_tuning(self):
        return f"DURR, fixed {self.steps} steps"

    def restore(self, inp):
        out = self.bundle.model.restore(self._tensor(inp), mode="fixed", steps=self.steps)
        return MethodOutput(self._numpy(out.output), int(out.steps[0]))


class DURRSure(Learned):
    """DURR stopped by Monte-Carlo SURE (no training, no clean image; white Gaussian noise only)."""

    name, label = "durr-sure", "DURR, SURE stop (white Gaussian noise only)"

    def unavailable(self):
        if self.bundle.reason:
            return self.bundle.reason
        family = self.bundle.model.config.family
        if family not in WHITE_NOISE_FAMILIES:
            return f"SURE assumes white Gaussian noise; {family} is not"
        return None

    def restore(self, inp):
        out = self.bundle.model.restore(self._tensor(inp), mode="sure")
        return MethodOutput(self._numpy(out.output), int(out.steps[0]))


class DURROracle(Learned):
    """DURR stopped at the step of best PSNR in hindsight (needs the reference: upper bound)."""

    name, label = "durr-oracle", "DURR, oracle stop (uses the clean image)"
    needs_reference = True

    def restore(self, inp, reference: np.ndarray | None = None):
        if reference is None:
            raise ValueError("the oracle needs the reference image")
        y = self._tensor(inp)
        ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))[None, None].to(y.device)
        from durr.metrics import metric_window

        scale = robust_scale(y, inp.modality)
        window = metric_window(inp.modality, reference)
        target = metric_space(ref, window)

        def score(x_work: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) working domain -> (B,)
            diff = metric_space(from_model(x_work, scale, inp.modality), window) - target
            return -diff.double().pow(2).flatten(1).mean(dim=1)

        out = self.bundle.model.restore(y, mode="oracle", score=score)
        return MethodOutput(self._numpy(out.output), int(out.steps[0]))


# --- registry -----------------------------------------------------------------------------------

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    Degraded, NLM, TVTuned, TVAdaptive, Wavelet, BM3D, FixedCNN, DURRFixed, DURRPolicy, DURRSure, DURROracle)}


def method_names() -> list[str]:
    """Every method name, in the order of the table."""
    return list(METHODS)


def make_methods(names: list[str], bundle: ModelBundle | None) -> list[Method]:
    """Instantiate methods by name (learned ones share ``bundle``); unknown names raise."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {method_names()}")
    out = []
    for n in names:
        cls = METHODS[n]
        out.append(cls(bundle if bundle is not None else ModelBundle(reason="no model given")) if cls.learned
                   else cls())
    return out


def call_method(method: Method, inp: MethodInput, reference: np.ndarray) -> MethodOutput:
    """The one place a method is called: the reference goes to the oracle only."""
    if method.needs_reference:
        return method.restore(inp, reference=reference)
    return method.restore(inp)
