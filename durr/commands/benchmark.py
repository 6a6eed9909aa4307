"""``durr benchmark``: every method side by side on seen and unseen levels (docs/benchmark.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from durr.data.sources import GROUP_OF_FAMILY

FAMILIES = tuple(GROUP_OF_FAMILY)   # every family with a corpus group: shipped and new (ct-sparseview, ...)

HELP = "every method side by side on seen and unseen levels"


def add_arguments(parser) -> None:
    from durr.data.corpus import DEFAULT_CORPUS

    parser.add_argument("--family", required=True, choices=FAMILIES, help="degradation family")
    parser.add_argument("--split", default="dev", help="corpus split of the test images (default: dev)")
    parser.add_argument("--levels", default="seen,unseen",
                        help="'seen', 'unseen', numbers, or a comma list mixing them (default: seen,unseen)")
    parser.add_argument("--methods", default=None, nargs="+",
                        help="methods, comma- or space-separated (default: all): degraded, nlm, tv, tv-adaptive, wavelet, bm3d, "
                             "fixed-cnn, durr-fixed, durr-policy, durr-oracle")
    parser.add_argument("--max-images", type=int, default=None,
                        help="test images, spread over the split's sources (default: 3 for CT and gaussian, "
                             "8 for MR; 0 = all)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: bench_results/<family>)")
    parser.add_argument("--model", default=None, help="model folder or name (default: models/<family>; for "
                        "ct-sparseview or mr-undersample, the folder `durr train policy` wrote)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus folder (default: datasets/corpus)")
    parser.add_argument("--tuning-images", type=int, default=None,
                        help="train-split images for tuning at a seen level (default: 3)")
    parser.add_argument("--tuning-sources", default=None,
                        help="comma-separated train-split source ids the tuning images come from "
                             "(default: every source; see datasets/manifest.csv)")
    parser.add_argument("--device", default="cpu", help="device of the learned methods: cpu (default), cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _command_line(args) -> str:
    """The command that reproduces this run (options left at their default are omitted)."""
    parts = ["durr benchmark", f"--family {args.family}"]
    defaults = {"split": "dev", "levels": "seen,unseen", "methods": None, "max_images": None, "out": None,
                "model": None, "tuning_images": None, "tuning_sources": None, "device": "cpu", "threads": None}
    for key, default in defaults.items():
        value = getattr(args, key)
        if isinstance(value, list):
            value = ",".join(value)
        if value != default:
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def run(args) -> int:
    import torch

    from durr.bench import benchmark as bench
    from durr.bench.report import write_results
    from durr.data.corpus import load_split
    from durr.data.sources import GROUP_OF_FAMILY
    from durr.train.device import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.split == "train":
        print("durr benchmark: error: the test split must not be the train split (tuning uses it)", file=sys.stderr)
        return 2
    group = GROUP_OF_FAMILY[args.family]
    try:
        test = bench.images_from_slices(load_split(group, args.split, args.corpus))
        train = bench.images_from_slices(load_split(group, "train", args.corpus))
    except FileNotFoundError as err:
        print(f"durr benchmark: error: {err}", file=sys.stderr)
        return 2
    max_images = bench.DEFAULT_MAX_IMAGES.get(args.family) if args.max_images is None else (args.max_images or None)
    test = bench.select_images(test, max_images)
    if args.tuning_sources:
        wanted = [sid.strip() for sid in args.tuning_sources.split(",") if sid.strip()]
        unknown = sorted(set(wanted) - {im.source_id for im in train})
        if unknown:
            print(f"durr benchmark: error: --tuning-sources: {unknown} not in the {group} train split "
                  f"(it holds {sorted({im.source_id for im in train})})", file=sys.stderr)
            return 2
        train = [im for im in train if im.source_id in wanted]
    train = bench.select_images(train, args.tuning_images or bench.TUNING_IMAGES)
    methods = [m.strip() for item in args.methods for m in item.split(",") if m.strip()] if args.methods else None
    try:
        result = bench.run_benchmark(args.family, test, train, levels=args.levels, methods=methods,
                                     model=args.model, device=str(pick_device(args.device)), split=args.split,
                                     progress=not args.quiet)
    except ValueError as err:
        print(f"durr benchmark: error: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("bench_results") / args.family
    command = _command_line(args)
    written = write_results(result, out, command)
    if not args.quiet:
        print((out / "table.md").read_text())
    print(f"wrote {', '.join(p.name for p in written)} to {out}")
    return 0
