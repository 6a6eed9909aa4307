"""Stage 1: train the restoration unit on seen levels (and, the same way, the fixed-depth baseline).

The DURR unit is unrolled to the number of steps the schedule assigns to each image's level
and supervised there; a lighter loss on the next ``overshoot_steps`` estimates asks the
dynamic not to fall apart right after its target time, which is what lets a policy stop
late without harm.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from durr.control.baseline import FixedDepthCNN
from durr.control.restorer import DURR
from durr.data.sampling import PairSampler
from durr.train.checkpoint import load_checkpoint, save_checkpoint
from durr.train.device import autocast, describe_device
from durr.train.distributed import World, all_mean, barrier, share, wrap_ddp
from durr.train.log import CSVLog
from durr.train.schedule import StepSchedule


@dataclass
class Stage1Config:
    iterations: int = 600
    batch: int = 12
    patch: int = 48
    lr: float = 1e-3
    lr_min: float = 1e-5
    grad_clip: float = 1.0
    seed: int = 0
    n_min: int = 2            # schedule: steps at the mildest seen level
    n_max: int = 7            # schedule: steps at the heaviest seen level
    overshoot_steps: int = 2
    overshoot_weight: float = 0.2
    checkpoint_every: int = 50
    log_every: int = 10
    compile: bool = False     # torch.compile the convolutions (the unit for DURR), CPU or CUDA
    # Train-split sources (manifest source ids) the restorer learns from; None: all of them.
    sources: list[str] | None = None
    # Draw patches so that each train source weighs the same (a real slice as much as all the
    # generated phantoms together), rather than each slice.
    balance_sources: bool = False


def load_restorer_state(model: torch.nn.Module, state: dict) -> None:
    """Load stage-1 weights; a DURR's policy is stage 2's business and is left as it is.

    (So a stage-1 checkpoint still fits when the policy's configuration changed since.)
    """
    if isinstance(model, DURR):
        state = {k: v for k, v in state.items() if not k.startswith("policy.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wrong = [k for k in missing if not k.startswith("policy.")] + list(unexpected)
        if wrong:
            raise RuntimeError(f"stage-1 checkpoint does not fit the model: {wrong[:5]}")
    else:
        model.load_state_dict(state)


def cosine_lr(cfg: Stage1Config, iteration: int) -> float:
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * iteration / cfg.iterations))


def durr_loss(model: DURR, y, x, steps: torch.Tensor, cfg: Stage1Config) -> torch.Tensor:
    """MSE at each image's scheduled step (+ weighted overshoot). y, x (B,1,P,P); steps (B,)."""
    horizon = int(steps.max()) + cfg.overshoot_steps
    xs = torch.stack(model.unroll(y, horizon))             # (T+1, B, 1, P, P)
    batch_idx = torch.arange(y.shape[0], device=y.device)
    per_step = (xs - x.unsqueeze(0)).pow(2).flatten(2).mean(2)  # (T+1, B)
    loss = per_step[steps, batch_idx].mean()
    for k in range(1, cfg.overshoot_steps + 1):
        loss = loss + cfg.overshoot_weight / cfg.overshoot_steps * per_step[steps + k, batch_idx].mean()
    return loss


class _Objective(torch.nn.Module):
    """The stage-1 loss as a module, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module, cfg: Stage1Config):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, y: torch.Tensor, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, DURR):
            return durr_loss(self.model, y, x, steps, self.cfg)
        return F.mse_loss(self.model(y), x)


def train_stage1(model: torch.nn.Module, sampler: PairSampler, cfg: Stage1Config, out_dir: str | Path,
                 device: torch.device = torch.device("cpu"), family=None,
                 seen: tuple[float, float] | None = None, progress: bool = True,
                 stop_after: int | None = None, world: World | None = None) -> dict:
    """Train ``model`` (a ``DURR`` or a ``FixedDepthCNN``) and checkpoint to ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when it exists. ``stop_after`` ends the run early
    at that iteration (as a kill would), for tests. ``world``: this rank under ``torchrun``
    (``durr.train.distributed``); each rank trains on its share of every global batch of
    ``cfg.batch`` and rank 0 alone writes checkpoints and logs. Returns a summary dict.
    """
    world = world or World()
    main = world.rank == 0
    rows = share(cfg.batch, world)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    is_durr = isinstance(model, DURR)
    if not is_durr and not isinstance(model, FixedDepthCNN):
        raise TypeError(f"train_stage1 trains DURR or FixedDepthCNN, got {type(model).__name__}")
    schedule = StepSchedule(family or sampler.degradation, seen or tuple(sampler.degradation.seen),
                            cfg.n_min, cfg.n_max) if is_durr else None
    # channels-last: about 1.5x faster small convolutions on CPU, and what tensor cores want on GPU
    model.to(device).to(memory_format=torch.channels_last).train()
    if cfg.compile:
        # in place, so state_dict keys (checkpoints, saved models) stay those of the eager module
        (model.unit if is_durr else model).compile()
    if is_durr:  # stage 1 leaves the policy alone (and DDP must not wait for its gradients)
        model.policy.requires_grad_(False)
    objective = wrap_ddp(_Objective(model, cfg), world, device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    start, elapsed, trained_on = 0, 0.0, describe_device(device)
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        load_restorer_state(model, state["model"])
        opt.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, elapsed = int(state["iteration"]), float(state["elapsed"])
        if start >= cfg.iterations:  # nothing left to train here: the card names where it was trained
            trained_on = state.get("device", trained_on)
    log = None if not main else CSVLog(out_dir / "log.csv", ["iteration", "loss", "identity_loss", "psnr", "mean_steps", "lr",
                                      "seconds"], resume_from=start)

    def checkpoint(iteration: int) -> None:
        if main:
            save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                        "generator": generator.get_state(), "iteration": iteration,
                                        "elapsed": elapsed, "config": asdict(cfg), "device": trained_on})
        barrier(world)

    end = cfg.iterations if stop_after is None else min(stop_after, cfg.iterations)
    bar = tqdm(range(start, end), initial=start, total=cfg.iterations, disable=not (progress and main),
               desc=f"stage 1 ({'DURR' if is_durr else 'fixed CNN'})", unit="it")
    t0 = time.perf_counter()
    for it in bar:
        pairs = sampler.sample(cfg.batch, generator)   # the global batch, the same on every rank
        y = pairs.degraded[rows].to(device).contiguous(memory_format=torch.channels_last)
        x = pairs.clean[rows].to(device).contiguous(memory_format=torch.channels_last)
        lr = cosine_lr(cfg, it)
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(device):
            steps = schedule.steps(pairs.level[rows]).to(device) if is_durr else torch.zeros(1)
            loss = objective(y, x, steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if (it + 1) % cfg.log_every == 0 or it + 1 == end:
            identity = all_mean(F.mse_loss(y, x).item(), world)
            mean_loss = all_mean(loss.item(), world)
            elapsed_now = elapsed + time.perf_counter() - t0
            psnr = 10 * math.log10(1.0 / max(mean_loss, 1e-12))
            if log is not None:
                log.write({"iteration": it + 1, "loss": mean_loss, "identity_loss": identity, "psnr": psnr,
                           "mean_steps": float(steps.float().mean()), "lr": lr, "seconds": elapsed_now})
            bar.set_postfix(loss=f"{mean_loss:.2e}", vs_identity=f"{mean_loss / max(identity, 1e-12):.2f}")
        if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == end:
            elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            checkpoint(it + 1)
    bar.close()
    if is_durr:
        model.policy.requires_grad_(True)
    return {"iterations": end, "seconds": elapsed, "device": trained_on,
            "final_loss": float(loss.item()) if end > start else None}
