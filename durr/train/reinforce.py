"""REINFORCE for the stopping time, on precomputed rollouts of a frozen restorer.

With the restorer frozen, an episode is fully described by the per-step features and the
per-step PSNR of its trajectory; both are computed once (``RolloutBank``), and policy
training is then cheap. The environment in ``durr.control.env`` plays the same episodes one
step at a time for other RL tools; its returns equal ``episode_return`` here.

Episode: at step n the policy sees features f_n and stops with probability p_n. Continuing
earns ``psnr[n+1] - psnr[n] - step_cost``; stopping earns nothing and ends it. At the horizon
T the episode is truncated. Return of stopping at tau: ``psnr[tau] - psnr[0] - step_cost * tau``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from durr.control.policy import StopPolicy
from durr.train.distributed import World, share, wrap_ddp


@dataclass
class ReinforceConfig:
    iterations: int = 3000
    batch: int = 256
    lr: float = 3e-3
    entropy_weight: float = 0.01
    step_cost: float = 0.0       # dB per step: trades quality for speed
    seed: int = 0


def episode_return(psnr: torch.Tensor, stop_step: torch.Tensor, step_cost: float) -> torch.Tensor:
    """psnr (B, T+1), stop_step (B,) -> undiscounted return (B,)."""
    idx = torch.arange(psnr.shape[0])
    return psnr[idx, stop_step] - psnr[:, 0] - step_cost * stop_step.to(psnr.dtype)


def sample_stops(p_stop: torch.Tensor, generator: torch.Generator, rows: slice = slice(None),
                 global_batch: int | None = None) -> torch.Tensor:
    """p_stop (B, T+1) -> first step (B,) at which a Bernoulli(p) draw says stop (T if none).

    Under data parallelism ``p_stop`` holds the ``rows`` of a global batch of ``global_batch``
    episodes: the uniforms are drawn for the whole batch (the same on every rank) and sliced.
    """
    shape = (global_batch or p_stop.shape[0], p_stop.shape[1])
    draws = torch.rand(shape, generator=generator)[rows] < p_stop
    draws[:, -1] = True  # truncation at the horizon
    return draws.float().argmax(dim=1)


def greedy_stops(p_stop: torch.Tensor) -> torch.Tensor:
    """The deterministic policy: the first step with p_stop > 0.5 (T if none)."""
    stops = p_stop > 0.5
    stops[:, -1] = True
    return stops.float().argmax(dim=1)


def stop_log_prob(logits: torch.Tensor, stop_step: torch.Tensor) -> torch.Tensor:
    """log-probability (B,) of continuing before ``stop_step`` and stopping at it.

    Stopping at the horizon T is a truncation, not a choice, so it adds no stop term.
    """
    horizon = logits.shape[1] - 1
    steps = torch.arange(logits.shape[1])[None]
    log_continue = torch.nn.functional.logsigmoid(-logits)
    log_stop = torch.nn.functional.logsigmoid(logits)
    before = (steps < stop_step[:, None]).float()
    at = ((steps == stop_step[:, None]) & (stop_step[:, None] < horizon)).float()
    return (before * log_continue + at * log_stop).sum(1)


def train_policy(policy: StopPolicy, features: torch.Tensor, psnr: torch.Tensor,
                 cfg: ReinforceConfig, progress=None, world: World | None = None) -> list[dict]:
    """REINFORCE with a self-critical baseline (the greedy policy's return) and an entropy bonus.

    features (N, T+1, F), psnr (N, T+1): the rollout bank (the same on every rank). Under
    ``torchrun`` each rank takes its share of every episode batch and DDP averages the
    gradients. Returns a log, one dict per 100 iterations.
    """
    world = world or World()
    generator = torch.Generator().manual_seed(cfg.seed)
    policy.fit_standardisation(features)
    trained = wrap_ddp(policy, world, torch.device("cpu"))
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    history = []
    batch = min(cfg.batch, features.shape[0])
    batch -= batch % world.size
    rows = share(batch, world)
    for it in range(cfg.iterations):
        idx = torch.randint(0, features.shape[0], (batch,), generator=generator)[rows]
        f, r = features[idx], psnr[idx]
        logits = trained(f)                                  # (B, T+1)
        p = torch.sigmoid(logits)
        with torch.no_grad():
            tau = sample_stops(p, generator, rows, batch)
            advantage = episode_return(r, tau, cfg.step_cost) - episode_return(r, greedy_stops(p), cfg.step_cost)
        entropy = -(p * torch.log(p + 1e-8) + (1 - p) * torch.log(1 - p + 1e-8)).mean()
        loss = -(advantage * stop_log_prob(logits, tau)).mean() - cfg.entropy_weight * entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (it + 1) % 100 == 0 or it + 1 == cfg.iterations:
            with torch.no_grad():
                g = greedy_stops(policy.stop_probability(features))
                row = {"iteration": it + 1, "greedy_return": float(episode_return(psnr, g, cfg.step_cost).mean()),
                       "oracle_return": float((psnr.max(1).values - psnr[:, 0]).mean()),
                       "mean_steps": float(g.float().mean()), "entropy": float(entropy)}
            history.append(row)
            if progress is not None:
                progress(row)
    return history
