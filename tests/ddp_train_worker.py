"""A few data-parallel training steps of a tiny model, run alone or under ``torchrun`` by the tests.

Usage: ``python tests/ddp_train_worker.py OUT_DIR [--stop-after N]``. Stage 1 trains a tiny
DURR for 4 iterations (global batch 4) on synthetic pairs, checkpointing to OUT_DIR/stage1;
then REINFORCE runs 20 iterations (global batch 8) on a synthetic rollout bank. Rank 0
writes the weights to OUT_DIR/weights.pt.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_tiny_durr  # noqa: E402

from durr.control.policy import StopPolicy  # noqa: E402
from durr.data.sampling import PairSampler  # noqa: E402
from durr.degrade import get_degradation  # noqa: E402
from durr.train.distributed import World, rank_zero_first, training_session  # noqa: E402
from durr.train.reinforce import ReinforceConfig, train_policy  # noqa: E402
from durr.train.stage1 import Stage1Config, train_stage1  # noqa: E402


def synthetic_bank(n: int = 6, size: int = 40):
    g = torch.Generator().manual_seed(1)
    clean = [torch.rand(size, size, generator=g) for _ in range(n)]
    noisy = [c + 0.1 * torch.randn(size, size, generator=g) for c in clean]
    return noisy, clean, torch.linspace(5.0, 35.0, n, dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = World.from_env()
    with training_session(world, torch.device("cpu")):
        # a cache built once by rank 0 is there, complete, when the other ranks look for it
        marker = args.out / "rank0_cache.txt"
        seen = rank_zero_first(world, lambda: marker.read_text() if marker.exists() else
                               (marker.write_text(f"built by rank {world.rank}") or "built"))
        assert world.rank == 0 or seen == "built by rank 0", seen
        sampler = PairSampler([], get_degradation("gaussian"), "OT", patch=24, bank=synthetic_bank())
        model = make_tiny_durr("OT", "gaussian", seed=3)
        cfg = Stage1Config(iterations=4, batch=4, patch=24, checkpoint_every=1, log_every=1, n_min=1, n_max=3)
        train_stage1(model, sampler, cfg, args.out / "stage1", progress=False, stop_after=args.stop_after,
                     world=world)
        if args.stop_after is not None:
            return
        g = torch.Generator().manual_seed(2)
        features = torch.randn(32, 9, 6, generator=g)
        psnr = torch.cumsum(torch.randn(32, 9, generator=g, dtype=torch.float64), dim=1)
        torch.manual_seed(4)
        policy = StopPolicy()
        train_policy(policy, features, psnr, ReinforceConfig(iterations=20, batch=8, seed=5), world=world)
        if world.rank == 0:
            torch.save({"restorer": model.state_dict(), "policy": policy.state_dict()}, args.out / "weights.pt")


if __name__ == "__main__":
    main()
