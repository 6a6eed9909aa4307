"""The moving-endpoint restorer: ``x_{n+1} = x_n + F(x_n, y)``, ``x_0 = y``, stopped per image.

Readable in one sitting: ``DURR.rollout`` is the whole inference algorithm. Stopping modes:

- ``"policy"``: stop at the first step whose stop probability exceeds 0.5, with the knee guard
  of ``durr.control.knee``, the step floor of ``durr.control.step_floor`` and the discrepancy
  cap of ``durr.control.moved_cap`` when ``config.policy`` has them; an input without measurable noise
  (``durr.control.features.NOISE_FREE_SIGMA``) is left as it is. ``durr.control.stopping`` is
  the same rule for recorded features;
- ``"fixed"``: run exactly ``steps`` steps;
- ``"oracle"``: run to ``max_steps`` and keep the best step according to a score that needs
  the clean image (evaluation only);
- ``"sure"``: stop at the first step whose Monte-Carlo SURE estimate of the error rises
  (``durr.control.sure``; valid for white Gaussian noise only, twice the compute).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from durr.control.features import noise_free, noise_sigma, state_features, update_over_sigma
from durr.control.level_scale import level_scale
from durr.control.normalize import from_model, robust_scale, to_model
from durr.control.policy import PolicyConfig, StopPolicy
from durr.control.step_floor import LOG_SIGMA, ceiling_steps, floor_steps
from durr.control.stopping import MOVED
from durr.control.sure import probe, probe_step, sure_risk
from durr.control.unit import RestorationUnit, UnitConfig

MODES = ("policy", "fixed", "oracle", "sure")


@dataclass
class DURRConfig:
    """Everything needed to rebuild a model; saved as ``config.json`` in its folder."""

    modality: str = "MR"            # "CT", "MR" or "OT": selects the normalisation
    family: str = "mr-rician"       # the degradation it was trained on
    rule: str = "euler"             # step rule (``durr.schemes.rule_names()``)
    max_steps: int = 40             # hard cap on steps at inference
    # Inputs noisier than this (working-domain noise level) are scaled down to it before the
    # dynamic runs, and the result scaled back (``durr.control.level_scale``); None: never.
    noise_ref: float | None = None
    unit: UnitConfig = field(default_factory=UnitConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DURRConfig":
        d = dict(d)
        unit = UnitConfig(**d.pop("unit", {}))
        policy = PolicyConfig(**d.pop("policy", {}))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(unit=unit, policy=policy, **known)


@dataclass
class Rollout:
    """Result of restoring a batch.

    output : (B, 1, H, W) the estimate at the stopping step (same domain as the input).
    steps : (B,) int64, the number of steps executed for each image (its terminal time).
    stop_prob : (B, T+1) the policy's stop probability at steps 0..T (policy mode), else None.
    trajectory : list of (B, 1, H, W) estimates at steps 0..T when ``record=True``.
    level_scale : (B,) the factor each input ran at (``durr.control.level_scale``; below 1: noisier
        than the heaviest seen level), or None for a model without a level scale.
    """

    output: torch.Tensor
    steps: torch.Tensor
    stop_prob: torch.Tensor | None = None
    trajectory: list[torch.Tensor] | None = None
    level_scale: torch.Tensor | None = None


class DURR(nn.Module):
    """Restoration unit + step rule + stopping policy."""

    def __init__(self, config: DURRConfig | None = None):
        super().__init__()
        self.config = config = config or DURRConfig()
        self.unit = RestorationUnit(config.unit)
        self.policy = StopPolicy(config.policy)
        if config.rule == "euler":
            self.rule = None  # the default, inlined: x + F(x, y)
        else:
            from durr.schemes import make_rule

            self.rule = make_rule(config.rule, max_steps=config.max_steps)

    # -- the dynamic -------------------------------------------------------------------------
    def init_state(self, y: torch.Tensor):
        return None if self.rule is None else self.rule.init_state(y)

    def step(self, x: torch.Tensor, y: torch.Tensor, state, n: int):
        """One step of the dynamic from ``x`` (B, 1, H, W); returns (x_next, state)."""
        if self.rule is None:
            return x + self.unit(x, y), state
        return self.rule.step(lambda z: self.unit(z, y), x, state, n)

    def unroll(self, y: torch.Tensor, steps: int) -> list[torch.Tensor]:
        """Estimates at steps 0..steps, each (B, 1, H, W), working domain, with gradients."""
        xs, state = [y], self.init_state(y)
        for n in range(steps):
            x, state = self.step(xs[-1], y, state, n)
            xs.append(x)
        return xs

    # -- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, y: torch.Tensor, mode: str = "policy", steps: int | None = None,
                max_steps: int | None = None, score: Callable[[torch.Tensor], torch.Tensor] | None = None,
                record: bool = False) -> Rollout:
        """Restore ``y`` (B, 1, H, W) in the working domain.

        steps : the step count for ``mode="fixed"``.
        max_steps : cap (default ``config.max_steps``).
        score : for ``mode="oracle"``, maps an estimate (B, 1, H, W) to a (B,) score, higher
            better (for example minus the squared error to the clean image).
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
        cap = self.config.max_steps if max_steps is None else int(max_steps)
        if mode == "fixed":
            if steps is None or steps < 0:
                raise ValueError("mode='fixed' needs steps >= 0")
            cap = int(steps)
        if mode == "oracle" and score is None:
            raise ValueError("mode='oracle' needs a score function (it uses the clean image)")
        if self.config.noise_ref is None:
            return self._rollout_unscaled(y, mode, cap, score, record)
        a = self.level_factor(y)
        if not bool((a < 1).any()):
            out = self._rollout_unscaled(y, mode, cap, score, record)
        else:
            out = self._rollout_unscaled(y * a, mode, cap, None if score is None else (lambda x: score(x / a)), record)
            out.output = out.output / a
            if out.trajectory is not None:
                out.trajectory = [t / a for t in out.trajectory]
        out.level_scale = a.flatten()
        return out

    def level_factor(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, 1) factor each input ``y`` (B, 1, H, W) runs at: ``durr.control.level_scale``
        with this model's ``noise_ref`` (ones without one)."""
        return level_scale(noise_sigma(y), self.config.noise_ref)[:, None, None, None]

    def _rollout_unscaled(self, y: torch.Tensor, mode: str, cap: int,
                          score: Callable[[torch.Tensor], torch.Tensor] | None, record: bool) -> Rollout:
        """``rollout`` without the level scale (``cap``: the resolved step limit)."""
        if mode == "sure":
            return self._rollout_sure(y, cap, record)
        if mode == "policy" and self.config.policy.knee_ratio is not None:
            return self._rollout_guarded(y, cap, record)

        batch = y.shape[0]
        x, x_prev, state = y, y, self.init_state(y)
        active = torch.ones(batch, dtype=torch.bool, device=y.device)
        taken = torch.zeros(batch, dtype=torch.long, device=y.device)
        sigma_y = noise_sigma(y) if mode == "policy" else None
        needed = self._features_read()
        probs, trajectory = [], [x] if record else None
        best, best_step = x, torch.zeros_like(taken)
        best_score = score(x) if mode == "oracle" else None
        for n in range(cap + 1):
            if mode == "policy":
                feats = state_features(x, x_prev, y, n, sigma_y, needed)
                p = self.policy.stop_probability(feats)
                probs.append(torch.where(active, p, torch.full_like(p, float("nan"))))
                if n == 0:
                    floor, ceiling = self._step_bounds(feats)
                active = (active & ((p <= 0.5) | (n < floor)) & ~((n == 0) & noise_free(sigma_y))
                          & ~self._over_cap(feats) & (n < ceiling))
            if n == cap or not active.any():
                break
            x_next, state = self.step(x, y, state, n)
            x_prev, x = x, torch.where(active[:, None, None, None], x_next, x)
            taken += active.long()
            if record:
                trajectory.append(x)
            if mode == "oracle":
                s = score(x)
                better = s > best_score
                best = torch.where(better[:, None, None, None], x, best)
                best_score = torch.where(better, s, best_score)
                best_step = torch.where(better, torch.full_like(best_step, n + 1), best_step)
        if mode == "oracle":
            return Rollout(best, best_step, None, trajectory)
        stop_prob = torch.stack(probs, dim=1) if probs else None
        return Rollout(x, taken, stop_prob, trajectory)

    def _features_read(self) -> frozenset[str]:
        """The state features policy-mode stopping reads: the policy's, the input's noise level
        (floor, ceiling, noise-free inputs) and the distance moved (discrepancy cap)."""
        return frozenset(self.config.policy.features) | {"log_sigma_input", "moved_over_sigma"}

    def _step_bounds(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) minimum and maximum steps from the step-0 features (B, F): the step floor (0
        without one) and the step ceiling (no limit without one)."""
        cfg, log_sigma = self.config.policy, feats[:, LOG_SIGMA]
        floor = torch.zeros(feats.shape[0], dtype=torch.long, device=feats.device)
        ceiling = torch.full_like(floor, torch.iinfo(torch.long).max)
        if cfg.step_floor is not None:
            floor = floor_steps(log_sigma, cfg.step_floor).to(feats.device)
        if cfg.step_ceiling is not None:
            ceiling = ceiling_steps(log_sigma, cfg.step_ceiling).to(feats.device)
        return floor, ceiling

    def _over_cap(self, feats: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the state (features (B, F)) has moved as far from the input as the
        discrepancy cap allows (``durr.control.moved_cap``); all False without a cap."""
        limit = self.config.policy.moved_cap
        if limit is None:
            return torch.zeros(feats.shape[0], dtype=torch.bool, device=feats.device)
        return feats[:, MOVED] >= limit

    def _rollout_guarded(self, y: torch.Tensor, cap: int, record: bool) -> Rollout:
        """Policy stopping with the knee guard: before moving on from ``x_n`` the next step is
        computed, and the image stops at ``x_n`` when that step's update is below
        ``knee_ratio`` times the largest so far, or when the policy says stop and the update is
        not a new largest one (``durr.control.knee``)."""
        knee = self.config.policy.knee_ratio
        batch = y.shape[0]
        sigma_y = noise_sigma(y)
        needed = self._features_read()
        x, x_prev, state = y, y, self.init_state(y)
        active = torch.ones(batch, dtype=torch.bool, device=y.device)
        taken = torch.zeros(batch, dtype=torch.long, device=y.device)
        peak = torch.zeros(batch, device=y.device)
        probs, trajectory = [], [x] if record else None
        for n in range(cap + 1):
            feats = state_features(x, x_prev, y, n, sigma_y, needed)
            p = self.policy.stop_probability(feats)
            probs.append(torch.where(active, p, torch.full_like(p, float("nan"))))
            if n == 0:
                floor, ceiling = self._step_bounds(feats)
                active = active & ~noise_free(sigma_y)
            active = active & ~self._over_cap(feats) & (n < ceiling)
            if n == cap or not active.any():
                break
            x_next, state = self.step(x, y, state, n)
            update = update_over_sigma(x_next, x, sigma_y)
            growing = update >= peak
            peak = torch.maximum(peak, update)
            stop = (update < knee * peak) | ((p > 0.5) & ~growing)
            active = active & ~(stop & (n >= floor))
            x_prev, x = x, torch.where(active[:, None, None, None], x_next, x)
            taken += active.long()
            if record:
                trajectory.append(x)
        return Rollout(x, taken, torch.stack(probs, dim=1), trajectory)

    def _rollout_sure(self, y: torch.Tensor, cap: int, record: bool) -> Rollout:
        """Each image stops at the first step whose SURE risk is above the previous step's.

        A second trajectory from ``y + eps b`` (one probe ``b``) runs beside the first, as one
        batch of 2B, for the divergence term of SURE.
        """
        if torch.is_autocast_enabled(y.device.type):
            # eps is 1e-3 sigma: the probe's difference drowns in bf16 rounding
            with torch.autocast(y.device.type, enabled=False):
                return self._rollout_sure(y.float(), cap, record)
        batch = y.shape[0]
        sigma = noise_sigma(y)
        eps = probe_step(sigma)
        b = probe(y)
        ys = torch.cat([y, y + eps[:, None, None, None] * b])
        xs, state = ys, self.init_state(ys)
        risk = sure_risk(y, y, ys[batch:], b, eps, sigma)
        out, taken = y, torch.zeros(batch, dtype=torch.long, device=y.device)
        active = torch.ones(batch, dtype=torch.bool, device=y.device)
        trajectory = [y] if record else None
        for n in range(cap):
            if not active.any():
                break
            xs, state = self.step(xs, ys, state, n)
            new_risk = sure_risk(y, xs[:batch], xs[batch:], b, eps, sigma)
            active = active & (new_risk <= risk)
            out = torch.where(active[:, None, None, None], xs[:batch], out)
            risk = torch.where(active, new_risk, risk)
            taken += active.long()
            if record:
                trajectory.append(out)
        return Rollout(out, taken, None, trajectory)

    @torch.no_grad()
    def restore(self, degraded: torch.Tensor, mode: str = "policy", **kwargs) -> Rollout:
        """Restore images in physical units (B, 1, H, W); the result is in physical units."""
        scale = robust_scale(degraded, self.config.modality)
        out = self.rollout(to_model(degraded, scale), mode=mode, **kwargs)
        modality = self.config.modality
        out.output = from_model(out.output, scale, modality)
        if out.trajectory is not None:
            out.trajectory = [from_model(t, scale, modality) for t in out.trajectory]
        return out
