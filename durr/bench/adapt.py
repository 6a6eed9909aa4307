"""Benchmark: adapt a shipped model's policy to a new degradation within a CPU time budget.

    python -m durr.bench.adapt --family ct-sparseview --base ct-lowdose --out bench_results/adapt-ct-sparseview
    python -m durr.bench.adapt --family mr-undersample --base mr-rician --out bench_results/adapt-mr-undersample

The "user's folder" is the corpus manifest's scans of the base model's group, written as
NIfTI files (one per source volume; each generated CT phantom is its own scan), so the run
uses the manifest's files only. ``durr train policy`` then splits that folder by scan,
retrains the policy alone on the seen levels and scores base policy, new policy, best fixed
steps and oracle stop on the held-out scans at seen and unseen levels. The table is printed
and written to OUT/table.md; training time is reported beside it (target: at most 10 min).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from durr.data.corpus import DEFAULT_CORPUS, load_split
from durr.data.sources import GROUP_OF_FAMILY


def export_group(group: str, folder: Path, corpus: Path = DEFAULT_CORPUS, max_phantoms: int | None = None) -> int:
    """Write the corpus group's slices (train and dev splits) as NIfTI scans; returns the count.

    Slices of one source form one volume, except generated phantoms (independent 2D slices),
    which become one scan each (at most ``max_phantoms`` per split).
    """
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for split in ("train", "dev"):
        data = load_split(group, split, corpus)
        by_source: dict[str, list[int]] = {}
        for i, sid in enumerate(data.source_ids):
            by_source.setdefault(sid, []).append(i)
        for sid, idx in by_source.items():
            if "phantom" in sid:
                scans = [[i] for i in idx[:max_phantoms]]
            else:
                shapes = {data.images[i].shape for i in idx}
                scans = [idx] if len(shapes) == 1 else [[i] for i in idx]
            for k, members in enumerate(scans):
                vol = np.stack([data.images[i] for i in members])            # (Z, H, W)
                sp = data.spacings[members[0]]
                name = f"{sid}.nii.gz" if len(scans) == 1 else f"{sid}-{k:03d}.nii.gz"
                affine = np.diag([sp, sp, 1.0, 1.0])
                nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), affine), folder / name)
                written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    from durr.cli import main as durr_main
    from durr.infer.model_io import read_config, resolve_model_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, help="the new degradation (ct-sparseview, mr-undersample, ...)")
    parser.add_argument("--base", required=True, help="the shipped model to adapt")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--max-phantoms", type=int, default=24, help="generated CT phantoms per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int)
    parser.add_argument("--stage", choices=["policy", "restorer"], default="policy",
                        help="policy: the policy alone (the benchmark); restorer: fine-tune the restorer too")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="degradation option passed to durr train")
    args = parser.parse_args(argv)

    base = resolve_model_dir(args.base)
    group = GROUP_OF_FAMILY.get(read_config(base).get("family", ""), "")
    if not group:
        raise SystemExit(f"{base}: not a shipped model of a corpus group")
    data = args.out / "data"
    if not data.exists():
        print(f"exported {export_group(group, data, args.corpus, args.max_phantoms)} scans to {data}")
    model_dir = args.out / "model"
    command = ["train", args.stage, "--base", str(base), "--degradation", args.family, "--data", str(data),
               "--out", str(model_dir), "--work-dir", str(args.out / "work"), "--threads", str(args.threads),
               "--seed", str(args.seed)] + (["--episodes", str(args.episodes)] if args.episodes else [])
    command += [f"--option={o}" for o in args.option]
    t0 = time.perf_counter()
    code = durr_main(command)
    if code:
        return code
    summary = json.loads((model_dir / "config.json").read_text())["user_training"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    table = card[card.index("| method"):].strip()
    secs = summary["seconds"]
    what = "policy only" if args.stage == "policy" else "restorer fine-tuned, then policy"
    text = (f"`{args.family}` from `{args.base}`, {what}; training {secs['training_total'] / 60:.1f} min "
            f"(bank {secs['bank'] / 60:.1f}, stage 1 {secs['stage1'] / 60:.1f}, stage 2 {secs['stage2'] / 60:.1f}), held-out scoring "
            f"{secs['heldout_evaluation'] / 60:.1f} min, {args.threads} threads; wall {(time.perf_counter() - t0) / 60:.1f} min.\n\n"
            + table + "\n")
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
