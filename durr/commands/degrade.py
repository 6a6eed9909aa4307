"""``durr degrade``: degrade a clean scan with a family of PROTOCOL.md section 2, or a user's.

    durr degrade IN OUT --family SPEC --level L [--levels A:B] [--seed S] [--reference REF_OUT]
                 [--modality auto|ct|mr|other] [--spacing MM] [--no-clip]

SPEC is a registered family, ``module.path:callable`` or a YAML file composing families
(``durr.degrade.custom``); a callable needs ``--levels A:B``, its training level range, and
takes its modality from ``--modality`` (default other).

OUT is written in IN's format, headers and units (``durr.io.save_scan(like=IN)``). For
``ct-lowdose`` the reference (the noise-free FBP of the same geometry, the image to score
against) is written too, to REF_OUT or by default to OUT with ``_reference`` before the
extension; for the other families the reference is the input itself and is written only when
``--reference`` is given. A volume is degraded slice by slice with one seeded generator.

Noise pushes some values past what the output's stored bit depth can hold (air below
-1024 HU in most CT DICOM, MR above 255 in 8-bit NIfTI); they are clipped to the storable
range, as a scanner would, with a warning giving their number (``--no-clip``: fail instead).
Never writes over IN. Exit status 0 on success, 2 for a scan that cannot be read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MODALITY_CHOICES = {"auto": None, "ct": "CT", "mr": "MR", "other": "OT"}
_GEOMETRY_FORMATS = ("dicom", "dicom-series", "nifti")     # formats whose spacing is real


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _levels(text: str) -> tuple[float, float]:
    from durr.degrade.custom import parse_levels

    try:
        return parse_levels(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _fail(err: Exception) -> int:
    print(f"durr degrade: error: {err}", file=sys.stderr)
    return 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from durr.degrade import degradation_names

    parser.add_argument("input", type=Path, metavar="IN", help="clean scan: DICOM file or series folder, NIfTI, PNG, TIFF or NPY")
    parser.add_argument("output", type=Path, metavar="OUT", help="degraded scan, written in IN's format")
    parser.add_argument("--family", required=True, metavar="SPEC",
                        help=f"degradation: a family ({', '.join(degradation_names())}), "
                             "module.path:callable, or a YAML file composing families")
    parser.add_argument("--level", required=True, type=float,
                        help="level in the family's unit: gaussian s/255, mr-rician percent of r, ct-lowdose dose fraction")
    parser.add_argument("--levels", type=_levels, metavar="A:B",
                        help="training level range of a user-defined degradation (needed for module:callable)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--reference", type=Path, metavar="REF_OUT",
                        help="where to write the reference (default for ct-lowdose: OUT_reference.<ext>)")
    parser.add_argument("--modality", choices=list(MODALITY_CHOICES), default="auto",
                        help="modality of a scan whose format has none (NIfTI, images, NPY); "
                             "also that of a user-defined degradation")
    parser.add_argument("--spacing", type=_positive_float, metavar="MM",
                        help="pixel spacing in mm for ct-lowdose (default: the scan's, or 0.7 for images/NPY)")
    parser.add_argument("--no-clip", dest="clip", action="store_false",
                        help="fail, instead of clipping with a warning, when values exceed what the output's "
                             "bit depth can hold")


def reference_path(output: Path) -> Path:
    """OUT with ``_reference`` before the extension (``a.nii.gz`` -> ``a_reference.nii.gz``)."""
    name = output.name
    for ext in (".nii.gz", ".tar.gz"):
        if name.lower().endswith(ext):
            return output.with_name(name[: -len(ext)] + "_reference" + name[-len(ext):])
    suffix = output.suffix if output.suffix and not output.is_dir() else ""
    stem = name[: -len(suffix)] if suffix else name
    return output.with_name(stem + "_reference" + suffix)


def _same_path(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def run(args: argparse.Namespace) -> int:
    from durr.degrade import degradation_names, load_degradation
    from durr.errors import ScanError
    from durr.io import load_scan, save_scan

    # a registered family keeps its own modality; --modality then describes the scan only
    user_defined = args.family not in degradation_names()
    try:
        deg = load_degradation(args.family, levels=args.levels,
                               modality=MODALITY_CHOICES[args.modality] if user_defined else None)
    except ValueError as err:
        return _fail(err)
    ref_out = args.reference
    if ref_out is None and deg.modality == "CT":
        ref_out = reference_path(args.output)
    for target in [args.output] + ([ref_out] if ref_out is not None else []):
        if _same_path(target, args.input):
            raise ScanError(target, f"refusing to write over the input {args.input}; choose another output path")
    if ref_out is not None and _same_path(ref_out, args.output):
        raise ScanError(ref_out, "the reference and the degraded scan would be the same file")

    scan = load_scan(args.input, modality=MODALITY_CHOICES[args.modality])
    if scan.modality in ("CT", "MR") and scan.modality != deg.modality:
        raise ScanError(args.input, f"is a {scan.modality} scan; {deg.name} degrades {deg.modality} scans "
                                    "(pass --modality to relabel a scan whose format carries none)")
    spacing = args.spacing
    if spacing is None and scan.source_format in _GEOMETRY_FORMATS:
        row, col = scan.spacing[-2:]
        spacing = 0.5 * (float(row) + float(col))      # square pixels assumed; mean if not
    try:
        noisy, reference = deg.apply_numpy(scan.array, args.level, seed=args.seed, spacing_mm=spacing)
    except ValueError as err:          # a level outside the family's domain, a bad user function
        return _fail(err)

    written = save_scan(scan.with_array(noisy), args.output, like=scan, clip=args.clip)
    print(f"{written}: {deg.name} at level {args.level:g} ({deg.level_unit}), seed {args.seed}")
    if ref_out is not None:
        written = save_scan(scan.with_array(reference), ref_out, like=scan, clip=args.clip)
        print(f"{written}: reference")
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="durr degrade")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
