"""Stage 2: the stopping policy, trained by REINFORCE with the restorer frozen."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from durr.control.features import NUM_FEATURES, trajectory_features
from durr.control.knee import fit_knee_ratio
from durr.control.level_scale import fit_noise_ref
from durr.control.moved_cap import fit_moved_cap
from durr.control.step_ceiling import fit_step_ceiling
from durr.control.step_floor import LOG_SIGMA, fit_step_floor
from durr.control.stopping import mean_psnr_at, policy_stops
from durr.control.policy import PolicyConfig, StopPolicy
from durr.control.restorer import DURR
from durr.control.reward import working_psnr
from durr.data.sampling import PairSampler
from durr.train.checkpoint import load_checkpoint, save_checkpoint
from durr.train.distributed import World, barrier, gather_chunks
from durr.train.feature_selection import select_features
from durr.train.reinforce import ReinforceConfig, train_policy


@dataclass
class Stage2Config:
    episodes: int = 384          # rollouts in the bank
    patch: int = 128             # larger than stage 1's: the policy's statistics need context
    horizon: int = 24            # steps each rollout is run to
    chunk: int = 32
    # Roll out whole bank slices instead of patch crops: the policy's statistics then see the
    # field of view they see at inference (crops of anatomy and whole slices with air around
    # differ), at the price of fewer, larger episodes.
    whole_slices: bool = False
    # Pick the policy's features by a rehearsal of extrapolation on the seen levels
    # (``durr.train.feature_selection``) instead of keeping the model's.
    select_features: bool = False
    # Roll out the slices of scans only, leaving out the natural images a medical group borrows
    # for stage 1 (``durr.data.sources.STAND_IN_NOTES``): on textures the noise estimate the
    # policy's features divide by is inflated, so their stopping statistics contradict the scans'.
    scans_only: bool = False
    # After REINFORCE, fit the knee guard's threshold on the same rollouts and keep it in the
    # policy's config (``durr.control.knee``): the policy alone is never asked to recognise the
    # slow start of a heavy-noise run, which seen levels do not show.
    knee_guard: bool = False
    # After REINFORCE, fit the step floor (``durr.control.step_floor``: a minimum step count that
    # grows as a power of the input's noise level) on the same rollouts; kept only if it beats
    # the policy alone there.
    step_floor: bool = False
    # After the floor, fit the step ceiling (``durr.control.step_ceiling``: at most c times the
    # floor's power law, c chosen on the same rollouts); kept only if it beats no ceiling there.
    step_ceiling: bool = False
    # After the floor, the ceiling and the guard, fit the discrepancy cap (``durr.control.moved_cap``): a cap on
    # rms(x_n - y) / sigma_y a margin above its largest value at a best step, kept if free there.
    moved_cap: bool = False
    # Fit the level scale's reference noise level (``durr.control.level_scale``) on the rollouts'
    # inputs: at inference an input noisier than the heaviest seen level is scaled down to it.
    level_scale: bool = False
    # Train-split sources (manifest source ids) the rollouts come from; None: all of them.
    sources: list[str] | None = None
    # Every source weighs the same in the rollouts (not every slice): the CT recipe's three real
    # slices then count as much as its 96 phantoms (a restorer trained on phantoms over-smooths
    # real anatomy sooner, and the policy must learn where). Crops are drawn with those weights;
    # whole-slice rollouts are resampled with them (with replacement) before REINFORCE and the fits.
    balance_sources: bool = False
    reinforce: ReinforceConfig = field(default_factory=ReinforceConfig)


@torch.no_grad()
def build_rollout_bank(model: DURR, sampler: PairSampler, episodes: int, horizon: int,
                       generator: torch.Generator, chunk: int = 32, progress: bool = True,
                       world: World | None = None, whole: bool = False):
    """Roll the frozen restorer forward on sampled pairs.

    Under ``torchrun`` every rank draws every chunk of pairs (cheap crops, so the generator
    stays in step) and rolls out every ``world.size``-th chunk; the chunks are gathered back
    in order, so the bank does not depend on the number of ranks.

    ``whole``: roll out whole bank slices (up to ``episodes`` of them, a seeded choice) rather
    than ``chunk``-sized batches of crops.

    Returns features (N, T+1, F), psnr (N, T+1) float64 and levels (N,).
    """
    world = world or World()
    model.eval().to(memory_format=torch.channels_last)
    if whole:
        return _whole_slice_bank(model, sampler, episodes, horizon, generator, progress, world)
    mine: dict[int, list[torch.Tensor]] = {}
    bar = tqdm(total=episodes, disable=not (progress and world.rank == 0), desc="stage 2 rollouts", unit="ep")
    done, index = 0, 0
    while done < episodes:
        pairs = sampler.sample(min(chunk, episodes - done), generator)
        y, clean = pairs.degraded, pairs.clean
        if index % world.size == world.rank:
            mine[index] = _episode(model, y, clean, horizon) + [pairs.level]
        done += y.shape[0]
        index += 1
        bar.update(y.shape[0])
    bar.close()
    features, psnr, levels = gather_chunks(mine, world)
    return features, psnr, levels


def _episode(model: DURR, y: torch.Tensor, clean: torch.Tensor, horizon: int) -> list[torch.Tensor]:
    """features (B, T+1, F) and working PSNR (B, T+1) of one rollout of ``y`` (B, 1, H, W)."""
    y = y.contiguous(memory_format=torch.channels_last)   # about 2.5x faster convolutions on CPU
    xs = model.unroll(y, horizon)
    feats = trajectory_features(xs, y)
    psnr = torch.stack([working_psnr(x, clean, model.config.modality) for x in xs], dim=1).double()
    return [feats, psnr]


def whole_slice_choice(count: int, episodes: int, generator: torch.Generator) -> list[int]:
    """The bank slices a whole-slice rollout bank rolls out, in order (the generator's first draw)."""
    return torch.randperm(count, generator=generator)[:min(episodes, count)].tolist()


def _whole_slice_bank(model, sampler, episodes, horizon, generator, progress, world):
    chosen = whole_slice_choice(len(sampler.bank[0]), episodes, generator)
    mine: dict[int, list[torch.Tensor]] = {}
    mine_idx = list(range(world.rank, len(chosen), world.size))
    for i in tqdm(mine_idx, disable=not (progress and world.rank == 0), desc="stage 2 rollouts (whole slices)",
                  unit="slice"):
        pairs = sampler.whole(chosen[i])
        mine[i] = _episode(model, pairs.degraded, pairs.clean, horizon) + [pairs.level]
    return tuple(gather_chunks(mine, world))


def resample_whole_slice_bank(bank, sampler: PairSampler, cfg: Stage2Config):
    """A whole-slice rollout bank (features, psnr, levels) redrawn, as many episodes, with
    replacement and the sampler's ``bank_weights`` of the slices it rolled out."""
    chosen = whole_slice_choice(len(sampler.bank[0]), cfg.episodes,
                                torch.Generator().manual_seed(cfg.reinforce.seed))
    weights = sampler.bank_weights[chosen]
    idx = torch.multinomial(weights, len(chosen), replacement=True,
                            generator=torch.Generator().manual_seed(cfg.reinforce.seed + 1))
    return tuple(t[idx] for t in bank)


def fresh_policy(model: DURR, seed: int) -> None:
    """Give ``model`` a newly initialised policy drawn from ``seed``, so that a corpus stage 2
    depends on its seed and rollouts, not on the policy a model folder held before."""
    torch.manual_seed(seed)
    model.policy = StopPolicy(model.config.policy)


def restorer_fingerprint(model: DURR) -> str:
    """SHA-256 of the restoration unit's weights: which restorer a cached rollout bank belongs to."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.unit.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def bank_fingerprint(sampler: PairSampler) -> str | None:
    """SHA-256 of what a rollout bank is drawn from: the sampler's bank slices (shapes, levels,
    a sum of each degraded slice) and its draw weights; None for a sampler without a bank."""
    if sampler.bank is None:
        return None
    degraded, _, levels = sampler.bank
    digest = hashlib.sha256()
    digest.update(levels.double().contiguous().numpy().tobytes())
    for t in degraded:
        digest.update(repr((tuple(t.shape), round(float(t.double().sum()), 6))).encode())
    if sampler.bank_weights is not None:
        digest.update(sampler.bank_weights.double().contiguous().numpy().tobytes())
    return digest.hexdigest()


def rollout_cache_name(cfg: Stage2Config, prefix: str = "rollouts") -> str:
    """File name of a rollout bank cache: crops keep the historical ``rollouts.pt``."""
    name = prefix if not cfg.whole_slices else f"{prefix}_whole_{cfg.episodes}_{cfg.horizon}"
    if cfg.sources is not None:
        name += "_src-" + hashlib.sha256(",".join(sorted(cfg.sources)).encode()).hexdigest()[:8]
    if cfg.balance_sources and not cfg.whole_slices:  # whole slices: the same rollouts, resampled later
        name += "_balanced"
    return f"{name}_scans.pt" if cfg.scans_only else f"{name}.pt"


def train_stage2(model: DURR, sampler: PairSampler, cfg: Stage2Config, progress: bool = True,
                 bank_cache: Path | None = None, world: World | None = None) -> dict:
    """Fit ``model.policy`` in place. Returns a summary with the REINFORCE log.

    ``bank_cache``: a file where the rollout bank is kept, so that retraining the policy of the
    same restorer skips the rollouts; a cache made by other restorer weights, or from another
    degradation bank, is rolled out anew.
    ``world``: this rank under ``torchrun`` (rollouts and episode batches are shared out).
    """
    world = world or World()
    for p in model.unit.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(cfg.reinforce.seed)
    fingerprint, drawn_from = restorer_fingerprint(model), bank_fingerprint(sampler)
    state = load_checkpoint(bank_cache) if bank_cache is not None and Path(bank_cache).exists() else {}
    if (state.get("restorer") == fingerprint and state.get("bank") == drawn_from
            and state["features"].shape[-1] == NUM_FEATURES):
        features, psnr, levels = state["features"], state["psnr"], state["levels"]
    else:  # no cache, or one rolled out by other restorer weights, from another bank or with other features
        features, psnr, levels = build_rollout_bank(model, sampler, cfg.episodes, cfg.horizon, generator,
                                                    cfg.chunk, progress, world, cfg.whole_slices)
        if bank_cache is not None and world.rank == 0:
            save_checkpoint(bank_cache, {"features": features, "psnr": psnr, "levels": levels,
                                         "restorer": fingerprint, "bank": drawn_from})
        barrier(world)
    if cfg.whole_slices and sampler.bank_weights is not None:
        features, psnr, levels = resample_whole_slice_bank((features, psnr, levels), sampler, cfg)
    bar = tqdm(total=cfg.reinforce.iterations, disable=not (progress and world.rank == 0),
               desc="stage 2 REINFORCE", unit="it")

    def report(row):
        bar.update(row["iteration"] - bar.n)
        bar.set_postfix(ret=f"{row['greedy_return']:.2f}", oracle=f"{row['oracle_return']:.2f}",
                        steps=f"{row['mean_steps']:.1f}")

    selection = []
    if cfg.select_features:
        names, selection = select_features(features.float(), psnr, sampler.degradation.severity(levels),
                                           model.config.policy, cfg.reinforce, world=world)
        if names != tuple(model.config.policy.features):
            model.config.policy = PolicyConfig(model.config.policy.hidden, model.config.policy.layers, names)
            fresh_policy(model, cfg.reinforce.seed)
    history = train_policy(model.policy, features.float(), psnr, cfg.reinforce, report, world)
    bar.close()
    wrappers = fit_stopping_wrappers(model.policy, features, psnr, cfg)
    model.config.noise_ref = (fit_noise_ref(features[:, 0, LOG_SIGMA].double().exp(), levels, sampler.degradation)
                              if cfg.level_scale else None)
    for p in model.unit.parameters():
        p.requires_grad_(True)
    return {"history": history, "bank_levels": levels, "bank_psnr": psnr, "feature_selection": selection,
            "noise_ref": model.config.noise_ref, **wrappers}


def fit_stopping_wrappers(policy: StopPolicy, features: torch.Tensor, psnr: torch.Tensor, cfg: Stage2Config) -> dict:
    """Fit, in this order and on a bank (features (N, T+1, F), psnr (N, T+1)), the step floor, the
    step ceiling, the knee guard and the discrepancy cap that ``cfg`` asks for, each into
    ``policy.config`` (the others are cleared). Returns {"step_floor", "step_ceiling",
    "knee_guard", "moved_cap"}: what each fit scored ({} when not asked)."""
    pc = policy.config
    pc.knee_ratio = pc.step_floor = pc.step_ceiling = pc.moved_cap = None
    out = {"step_floor": fit_floor(policy, features, psnr) if cfg.step_floor else {},
           "step_ceiling": {}, "knee_guard": {}, "moved_cap": {}}
    if cfg.step_ceiling:
        pc.step_ceiling, out["step_ceiling"] = fit_step_ceiling(policy, features, psnr)
    if cfg.knee_guard:
        pc.knee_ratio, scores = fit_knee_ratio(policy, features, psnr)
        out["knee_guard"] = {"knee_ratio": pc.knee_ratio, "bank_psnr_by_ratio": scores}
    if cfg.moved_cap:
        pc.moved_cap, scores = fit_moved_cap(policy, features, psnr)
        out["moved_cap"] = {"moved_cap": pc.moved_cap, "bank_psnr_by_cap": scores}
    return out


def fit_floor(policy: StopPolicy, features: torch.Tensor, psnr: torch.Tensor) -> dict:
    """Fit the step floor on a bank and keep it in ``policy.config`` if it beats the policy alone
    there. Returns the law and both bank scores."""
    alone = mean_psnr_at(psnr, policy_stops(policy, features))
    law = fit_step_floor(features, psnr)
    policy.config.step_floor = law
    floored = mean_psnr_at(psnr, policy_stops(policy, features))
    if floored <= alone:
        policy.config.step_floor = None
    return {"law": list(law), "kept": floored > alone, "bank_psnr_floored": floored, "bank_psnr_policy_alone": alone}
