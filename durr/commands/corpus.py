"""``durr corpus build``: the offline training corpus and its manifest."""

from __future__ import annotations

from pathlib import Path

from durr.data.corpus import DEFAULT_CORPUS, DEFAULT_MANIFEST, build_corpus


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=["build"], help="build the train/dev splits")
    parser.add_argument("--groups", default="ct,mr,natural", help="comma-separated: ct, mr, natural")
    parser.add_argument("--out", type=Path, default=DEFAULT_CORPUS, help="corpus folder (default: %(default)s)")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest CSV to write")


def run(args) -> int:
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    counts = build_corpus(args.out, groups, args.manifest)
    print(f"corpus written to {args.out}: {sum(counts.values())} slices from {len(counts)} sources; "
          f"manifest {args.manifest}")
    return 0
