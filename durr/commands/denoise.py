"""``durr denoise``: restore DICOM series, NIfTI volumes and images in batch.

    durr denoise INPUT [INPUT ...] -o OUTDIR [--modality auto|ct|mr|other] [--model NAME_OR_DIR]
                 [--steps auto|sure|N] [--max-steps N] [--device auto|cpu|cuda] [--batch-size N]
                 [--report FILE] [--overwrite]

A file lands at ``OUTDIR/<file name>``; a folder is mirrored under ``OUTDIR/<folder name>/``.
Rerunning skips complete outputs and redoes the rest. Exit status: 0 when every scan was
restored or skipped, 1 when any failed (listed at the end), 2 for an unusable command line,
model or output folder. Under ``torchrun --nproc_per_node N -m durr denoise ...`` the scans
are shared among the ranks. The engine is ``durr.infer.batch``; ``docs/cli.md`` has the
details.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODALITY_CHOICES = {"auto": None, "ct": "CT", "mr": "MR", "other": "OT"}


def _whole_number(text: str, minimum: int, alternatives: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {alternatives}a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def _steps(text: str) -> int | str | None:
    if text in ("auto", "sure"):
        return None if text == "auto" else text
    return _whole_number(text, 0, alternatives="'auto', 'sure' or ")


def _positive(text: str) -> int:
    return _whole_number(text, 1)


def _report(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".csv", ".json"):
        raise argparse.ArgumentTypeError(f"{text}: the report name must end in .csv or .json")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="DICOM files, folders (searched recursively; one scan per DICOM series), "
                             "NIfTI, PNG, TIFF or NPY files")
    parser.add_argument("-o", "--out", dest="outdir", type=Path, required=True, metavar="OUTDIR",
                        help="output folder; inputs are mirrored under it")
    parser.add_argument("--modality", choices=list(MODALITY_CHOICES), default="auto",
                        help="modality of scans whose format has none (NIfTI, images, NPY; DICOM "
                             "whose Modality is not CT or MR); auto reads them as 'other' "
                             "(default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="NAME_OR_DIR",
                        help="one model for every scan: a name under models/ or a model folder "
                             "(default: by modality, ct-lowdose / mr-rician / gaussian)")
    parser.add_argument("--steps", type=_steps, default=None, metavar="auto|sure|N",
                        help="auto: the learned policy stops each slice; sure: stop where the SURE estimate "
                             "of the error stops falling (white Gaussian noise only, twice the compute); "
                             "N: exactly N steps (default: auto)")
    parser.add_argument("--max-steps", type=_positive, default=None, metavar="N",
                        help="cap on the policy's steps (default: the model's own)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA if present (bf16, channels-last), else CPU (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive, default=8, metavar="N",
                        help="slices per forward pass; no effect on the result (default: %(default)s)")
    parser.add_argument("--report", type=_report, default=None, metavar="FILE",
                        help="per-scan report, CSV or JSON by the name's ending")
    parser.add_argument("--overwrite", action="store_true",
                        help="restore every scan again, even where the output is complete")


def run(args) -> int:
    from durr.infer.batch import Settings, denoise
    from durr.infer.distributed import World
    from durr.train.device import pick_device

    try:
        pick_device(args.device)
        world = World.from_env()
    except ValueError as err:
        print(f"durr denoise: error: {err}", file=sys.stderr)
        return 2
    settings = Settings(model=args.model, modality=MODALITY_CHOICES[args.modality],
                        mode={None: "policy", "sure": "sure"}.get(args.steps, "fixed"),
                        steps=args.steps if isinstance(args.steps, int) else None,
                        max_steps=args.max_steps, batch_size=args.batch_size, device=args.device,
                        overwrite=args.overwrite)
    # a --model that cannot be loaded raises ModelError before any scan: exit status 2
    result = denoise(args.inputs, args.outdir, settings, report=args.report, world=world)
    return 1 if result.failed else 0
