"""``durr bench``: the scheme-library benchmarks.

    durr bench schemes [--parts convergence revnet restorer] [--iterations 200] ...
    durr bench pdenet  [--quick]
    durr bench robust  [--parts digits restorer] [--epochs 20] [--eps 0.1] ...

Everything after the choice is passed to the benchmark module (``durr.bench.schemes`` for
``schemes`` and ``pdenet``, ``durr.bench.robust`` for ``robust``); ``durr bench schemes --help``
lists its options. Each prints markdown tables; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse

HELP = "scheme-library benchmarks: schemes (orders, RevNet, DURR per rule), pdenet, robust"
CHOICES = ("schemes", "pdenet", "robust")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=CHOICES, help="which benchmark")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of that benchmark (see its --help)")


def run(args: argparse.Namespace) -> int:
    options = list(args.options)
    if args.which == "robust":
        from durr.bench import robust

        return robust.main(options)
    from durr.bench import schemes

    if args.which == "pdenet":
        if "--parts" not in options:
            options = ["--parts", "pdenet"] + options
        return schemes.main(options)
    return schemes.main(options)
