"""The ``durr`` command: a thin dispatcher over one module per sub-command.

Each module in ``durr.commands`` exposes ``add_arguments(parser)`` and ``run(args) -> int``
and a one-line ``HELP``. Modules are imported lazily so that ``durr --help`` stays fast and
a sub-command's heavy imports (torch, streamlit) are paid only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from durr.errors import ModelError, ScanError

# sub-command -> (module in durr.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "restore a bundled sample scan and write a side-by-side PNG"),
    "denoise": ("denoise", "restore DICOM series, NIfTI volumes and images in batch"),
    "degrade": ("degrade", "degrade a clean scan with a family of PROTOCOL.md (and write the CT reference)"),
    "corpus": ("corpus", "build the offline training corpus (train/dev splits of 2D slices)"),
    "train": ("train", "train the restorer (stage 1) or the stopping policy (stage 2)"),
    "benchmark": ("benchmark", "every method side by side on seen and unseen levels"),
    "bench": ("bench", "micro-benchmarks: schemes, speed"),
    "app": ("app", "start the Streamlit app on 127.0.0.1"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durr", description="Restore CT and MR scans with DURR (moving endpoint control).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help / errors for unknown commands
        parser.print_help()
        return 0 if args.command is None and not argv else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"durr.commands.{COMMANDS[name][0]}")
    sub_parser = argparse.ArgumentParser(prog=f"durr {name}", description=COMMANDS[name][1])
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(rest)
    args.command_line = ["durr", name, *rest]   # what the user typed, for model cards
    try:
        return int(module.run(args) or 0)
    except (ScanError, ModelError) as err:
        print(f"durr {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"durr {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
