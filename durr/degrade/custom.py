"""User-defined degradations: ``load_degradation(spec)`` for a name, a callable or a YAML file.

A spec is one of

- a registered name (``"ct-lowdose"``): that family, ``options`` passed to its constructor
  (``{"circle": True}``);
- ``"module.path:callable"``: a function ``fn(clean, level, generator) -> degraded`` taking a
  float32 batch (B, 1, H, W), float32 levels (B,) and a ``torch.Generator``, and returning a
  tensor (B, 1, H, W); the reference is the clean batch. Its output is checked on every call;
- a ``.yaml``/``.yml`` file composing families, each step degrading the previous one's output::

      name: blur-then-rician      # default: the file's stem
      modality: MR                # default: the steps' (OT if none says)
      seen: [1.0, 5.0]            # training level range
      unseen: [7.0, 9.0]          # optional evaluation levels
      steps:
        - {family: blur, level: 1.5}                        # a fixed level
        - {family: mr-rician, level: level, options: {}}    # the composite's level

  The reference is the first step's; at least one step takes ``level: level``, and the first
  that does sets the level's unit and severity. A step's family may be a ``module:callable``.
  With more than one step drawing noise the draws go step by step over the whole batch, so a
  batch equals its images degraded one by one only when at most one step is random.

Callables and files are registered under their name (the spec string; the file's ``name``) so
that ``get_degradation(name)`` finds them. Every problem is a one-line ValueError that names
the spec or file.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import numbers
from pathlib import Path

import torch

from durr.degrade.base import Degradation, Degraded
from durr.degrade.registry import degradation_names, get_degradation, register

__all__ = ["load_degradation", "parse_levels", "UserCallable", "Composite"]

MODALITIES = ("CT", "MR", "OT")
_FILE_KEYS = ("name", "modality", "seen", "unseen", "steps")
_STEP_KEYS = ("family", "level", "options")
_COMPOSITE_LEVEL = "level"      # a step's ``level`` that means "the composite's level"


def _error(subject, problem) -> ValueError:
    return ValueError(" ".join(f"{subject}: {problem}".split()))


def _level(value, subject: str) -> float:
    """A finite level >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise _error(subject, f"expected a finite level >= 0, got {value!r}")
    return float(value)


def _level_range(value, subject: str) -> tuple[float, float]:
    """[lo, hi] -> (lo, hi), finite, 0 <= lo <= hi."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _error(subject, f"expected a level range [lo, hi], got {value!r}")
    lo, hi = (_level(v, subject) for v in value)
    if lo > hi:
        raise _error(subject, f"level range [{lo:g}, {hi:g}] has lo > hi")
    return lo, hi


def parse_levels(text: str) -> tuple[float, float]:
    """``"A:B"`` -> (A, B), a level range with 0 <= A <= B (ValueError otherwise)."""
    lo, sep, hi = str(text).partition(":")
    try:
        bounds = (float(lo), float(hi)) if sep else None
    except ValueError:
        bounds = None
    if bounds is None:
        raise _error(f"levels {text!r}", "expected a level range A:B, e.g. 1:5")
    return _level_range(bounds, f"levels {text!r}")


def _import_callable(spec: str):
    """The function named by ``module.path:callable``, checked to take 3 positional arguments."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise _error(spec, "expected module.path:callable")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:          # a user module may fail on import in any way
        raise _error(spec, f"cannot import module {module_name!r} ({type(err).__name__}: {err})") from err
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise _error(spec, f"module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise _error(spec, f"{attr!r} is not callable (it is a {type(fn).__name__})")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):   # some builtins have none to check
        return fn
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise _error(spec, f"{attr}{signature} must accept 3 positional arguments "
                           "(clean, level, generator)") from None
    return fn


def _checked(out, clean: torch.Tensor, name: str) -> torch.Tensor:
    """A user function's result as float32 on ``clean``'s device, if a finite tensor of its shape."""
    if not isinstance(out, torch.Tensor):
        raise _error(name, f"returned a {type(out).__name__}, expected a torch.Tensor")
    if out.shape != clean.shape:
        raise _error(name, f"returned shape {tuple(out.shape)}, expected the input's {tuple(clean.shape)}")
    out = out.to(clean.device, torch.float32)
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise _error(name, f"returned {bad} NaN or inf values")
    return out


class UserCallable(Degradation):
    """A user function ``fn(clean (B,1,H,W), level (B,), generator) -> degraded (B,1,H,W)``.

    Registered under the spec string ``"module.path:callable"``; the reference is the clean batch.
    """

    def __init__(self, spec: str, seen: tuple[float, float] = (0.0, 0.0), unseen: tuple[float, ...] = (),
                 modality: str = "OT"):
        super().__init__()
        self.fn = _import_callable(spec)
        self.name, self.seen, self.unseen, self.modality = spec, tuple(seen), tuple(unseen), modality
        self.level_unit = f"the level passed to {spec}"

    def degrade(self, clean, levels, generator, spacing_mm) -> Degraded:
        generator = torch.default_generator if generator is None else generator
        # clones: the user's function may work in place
        out = self.fn(clean.clone(), levels.clone(), generator)
        return Degraded(_checked(out, clean, self.name), clean.clone())


class Composite(Degradation):
    """Steps applied in order, each to the previous one's degraded output; (B, 1, H, W).

    ``fixed[k]`` is step k's level, or None for the composite's level. The reference is the
    first step's; the level's unit, severity and grid are those of the first step taking it.
    """

    def __init__(self, name: str, steps: list[Degradation], fixed: list[float | None],
                 seen: tuple[float, float], unseen: tuple[float, ...] = (), modality: str = "OT"):
        super().__init__()
        self.steps = torch.nn.ModuleList(steps)
        self.fixed = tuple(fixed)
        self.name, self.seen, self.unseen, self.modality = name, tuple(seen), tuple(unseen), modality
        self._driver_index = self.fixed.index(None)
        driver = steps[self._driver_index]
        self.level_unit = f"{driver.name}: {driver.level_unit}"
        self.level_grid = driver.level_grid

    def severity(self, level) -> torch.Tensor:
        return self.steps[self._driver_index].severity(level)

    def level_of_severity(self, severity) -> torch.Tensor:
        return self.steps[self._driver_index].level_of_severity(severity)

    def degrade(self, clean, levels, generator, spacing_mm, step_options=None) -> Degraded:
        noisy, reference = clean, None
        for k, (step, fixed) in enumerate(zip(self.steps, self.fixed)):
            options = step_options[k] if step_options else {}
            out = step(noisy, levels if fixed is None else fixed, generator=generator,
                       spacing_mm=spacing_mm, **options)
            noisy = out.noisy
            reference = out.reference if reference is None else reference
        return Degraded(noisy, reference)

    def volume_options(self, volume: torch.Tensor) -> dict:
        """Each step's volume options, taken from the clean volume (Z, 1, H, W).

        The clean volume stands in for a later step's input (unknown until the slices are
        degraded), so that e.g. ``mr-rician`` keeps one noise level for the whole volume.
        """
        return {"step_options": [step.volume_options(volume) for step in self.steps]}


def _registered(spec: str, seen, options, subject: str) -> Degradation:
    """A registered family, built with ``options``, its seen range replaced by ``seen``."""
    deg = get_degradation(spec)
    if options:
        if not isinstance(options, dict):
            raise _error(subject, f"options must be a mapping, got {options!r}")
        family = type(deg)
        try:
            deg = family(**options)
        except (TypeError, ValueError) as err:
            keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            accepted = [k for k, v in inspect.signature(family).parameters.items() if v.kind in keywords]
            raise _error(subject, f"bad options {options}; accepted: {', '.join(accepted) or 'none'} ({err})") from None
    elif seen is not None:
        deg = copy.copy(deg)          # not the registry's own instance
    if seen is not None:
        deg.seen = seen
    return deg


def _step(item, seen) -> tuple[Degradation, float | None]:
    """One YAML step -> (degradation, fixed level or None). Plain ValueErrors; the caller says where."""
    if not isinstance(item, dict):
        raise ValueError(f"expected a mapping with keys {', '.join(_STEP_KEYS)}, got {item!r}")
    unknown = sorted(map(str, set(item) - set(_STEP_KEYS)))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_STEP_KEYS)}")
    family, options, level = item.get("family"), item.get("options") or {}, item.get("level")
    if not isinstance(family, str) or not family:
        raise ValueError("no 'family' (a registered name or module.path:callable)")
    if ":" in family:
        if options:
            raise ValueError(f"{family} is a callable: it takes no options")
        step = UserCallable(family, seen)
    elif family in degradation_names():
        step = _registered(family, None, options, family)
    else:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(degradation_names())}, "
                         "or module.path:callable")
    if level == _COMPOSITE_LEVEL:
        return step, None
    if level is None or isinstance(level, str):
        raise ValueError(f"level must be a number or '{_COMPOSITE_LEVEL}' (the composite's level), got {level!r}")
    return step, _level(level, "level")


def _read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise _error(path, "no such file")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise _error(path, f"cannot read: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _error(path, f"not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(doc, dict):
        raise _error(path, f"expected a mapping with keys {', '.join(_FILE_KEYS)}")
    unknown = sorted(map(str, set(doc) - set(_FILE_KEYS)))
    if unknown:
        raise _error(path, f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_FILE_KEYS)}")
    return doc


def _from_file(path: Path, seen, modality: str | None) -> Composite:
    doc = _read_yaml(path)
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name or ":" in name or name.lower().endswith((".yaml", ".yml")):
        raise _error(path, f"name must be a plain string (no ':' or .yaml), got {name!r}")
    own_seen = _level_range(doc["seen"], f"{path}: seen") if "seen" in doc else None
    seen = seen or own_seen
    if seen is None:
        raise _error(path, "no 'seen' level range: add seen: [lo, hi] or pass --levels A:B")
    unseen = doc.get("unseen", [])
    if not isinstance(unseen, list):
        raise _error(path, f"unseen must be a list of levels, got {unseen!r}")
    unseen = tuple(_level(v, f"{path}: unseen") for v in unseen)

    items = doc.get("steps")
    if not isinstance(items, list) or not items:
        raise _error(path, "'steps' must be a non-empty list")
    steps, fixed = [], []
    for k, item in enumerate(items, 1):
        try:
            step, level = _step(item, seen)
        except ValueError as err:
            raise _error(f"{path}: step {k}", err) from None
        steps.append(step)
        fixed.append(level)
    if None not in fixed:
        raise _error(path, f"no step takes the composite's level: give one step level: {_COMPOSITE_LEVEL}")

    declared = doc.get("modality")
    if declared is not None and declared not in MODALITIES:
        raise _error(path, f"modality must be one of {', '.join(MODALITIES)}, got {declared!r}")
    if modality and declared and modality != declared:
        raise _error(path, f"the file says modality {declared}, but {modality} was asked for")
    modality = modality or declared or next((s.modality for s in steps if s.modality != "OT"), "OT")
    for k, step in enumerate(steps, 1):
        if step.modality not in ("OT", modality):
            raise _error(path, f"step {k} ({step.name}) degrades {step.modality} images, not {modality}")
    return Composite(name, steps, fixed, seen, unseen, modality)


def _register(deg: Degradation) -> Degradation:
    """Register a user-defined degradation, never in place of a family of the code."""
    if deg.name in degradation_names() and not isinstance(get_degradation(deg.name), (UserCallable, Composite)):
        raise _error(deg.name, "is the name of a registered family; choose another name")
    return register(deg, replace=True)


def load_degradation(spec: str, levels: tuple[float, float] | None = None, modality: str | None = None,
                     options: dict | None = None) -> Degradation:
    """A degradation from a spec: a registered name, ``module.path:callable`` or a YAML file.

    Parameters
    ----------
    spec : see the module docstring.
    levels : (lo, hi) replacing the seen (training) level range; needed for a callable.
    modality : ``"CT"``, ``"MR"`` or ``"OT"``: a callable's (default ``"OT"``); for a name or a
        file, the modality it must have (a file without one takes it).
    options : constructor keywords of a registered family (e.g. ``{"circle": True}``).

    Returns
    -------
    The Degradation; a callable's or a file's is registered under its name.

    Raises
    ------
    ValueError, one line naming the spec or file and the problem.
    """
    if not isinstance(spec, str) or not spec:
        raise _error(repr(spec), "a degradation spec must be a non-empty string")
    if modality is not None and modality not in MODALITIES:
        raise _error(spec, f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    seen = None if levels is None else _level_range(levels, f"{spec}: levels")
    is_file = spec.lower().endswith((".yaml", ".yml"))
    if options and (is_file or spec not in degradation_names()):
        raise _error(spec, "options apply to a registered family only (a file's steps take their own)")
    if is_file:
        return _register(_from_file(Path(spec), seen, modality))
    if ":" in spec:
        if seen is None:
            raise _error(spec, "a user-defined callable needs its training level range: pass --levels A:B "
                               "(levels=(A, B))")
        return _register(UserCallable(spec, seen, (), modality or "OT"))
    if spec not in degradation_names():
        raise _error(spec, f"unknown degradation; valid: {', '.join(degradation_names())}, "
                           "module.path:callable or a .yaml file")
    deg = _registered(spec, seen, options, spec)
    if modality is not None and modality != deg.modality:
        raise _error(spec, f"degrades {deg.modality} images, not {modality}")
    return deg
