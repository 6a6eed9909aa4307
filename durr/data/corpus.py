"""Build and load the corpus: 2D slices per group ("ct", "mr", "natural") and split.

Layout under the corpus folder (default ``datasets/corpus``)::

    <group>/<split>.npz   slice_00000, slice_00001, ...  float32 (H, W), physical units
    <group>/<split>.json  [{"source_id", "spacing_mm", "shape"}, ...] in slice order
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from durr.data.phantoms import random_ct_phantom
from durr.data.sources import SOURCES, Source

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "datasets" / "corpus"
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "datasets" / "manifest.csv"
MR_SLICE_STEP_MM = 6


@dataclass
class Slices:
    images: list[np.ndarray]       # each (H, W) float32, physical units
    spacings: list[float]          # row spacing in mm
    source_ids: list[str]


def _grey(image: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.util import img_as_float32

    image = img_as_float32(image)
    return rgb2gray(image[..., :3]) if image.ndim == 3 else image


def _mostly_foreground(image: np.ndarray, fraction: float = 0.15) -> bool:
    return float((image > 0.1 * np.percentile(image, 99.5)).mean()) > fraction


def read_source(src: Source) -> list[tuple[np.ndarray, float]]:
    """The 2D slices of one source: list of ((H, W) float32 physical units, spacing mm)."""
    if src.kind == "phantom":
        rng = np.random.default_rng(src.seed)
        out = []
        for _ in range(src.count):
            spacing = float(rng.uniform(0.6, 0.9))
            out.append((random_ct_phantom(rng, 512, spacing), spacing))
        return out
    if src.kind in ("pydicom", "pydicom-data"):
        from pydicom.data import get_testdata_file

        from durr.io import load_scan

        scan = load_scan(get_testdata_file(src.name))
        return [(s.astype(np.float32), float(scan.spacing[-2])) for s in scan.slices]
    if src.kind == "nilearn-mni152":
        from nilearn.datasets import load_mni152_template

        img = load_mni152_template(resolution=1)
        vol = np.asarray(img.get_fdata(), dtype=np.float32)  # (x, y, z), 1 mm
        out = []
        for z in range(0, vol.shape[2], MR_SLICE_STEP_MM):
            axial = np.ascontiguousarray(np.rot90(vol[:, :, z]))
            if axial.max() > 0 and _mostly_foreground(axial):
                out.append((axial, 1.0))
        return out
    if src.kind in ("dipy-npy", "dipy-nifti"):
        import dipy.data

        path = Path(dipy.data.__file__).parent / "files" / src.name
        if src.kind == "dipy-npy":
            return [(np.load(path).astype(np.float32), 1.0)]
        import nibabel as nib

        img = nib.load(path)
        vol = np.asarray(img.get_fdata(), dtype=np.float32)
        vol = vol.reshape(vol.shape[:3])
        spacing = float(img.header.get_zooms()[0])
        return [(np.ascontiguousarray(np.rot90(vol[:, :, z])), spacing) for z in range(vol.shape[2])
                if _mostly_foreground(vol[:, :, z])]
    if src.kind == "skimage":
        import skimage.data

        return [(_grey(getattr(skimage.data, src.name)()), 1.0)]
    if src.kind == "sklearn":
        from sklearn.datasets import load_sample_image

        return [(_grey(load_sample_image(src.name)), 1.0)]
    raise ValueError(f"unknown source kind {src.kind!r} for {src.source_id}")


def _write_split(folder: Path, split: str, items: list[tuple[np.ndarray, float, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"slice_{i:05d}": a for i, (a, _, _) in enumerate(items)}
    index = [{"source_id": s, "spacing_mm": sp, "shape": list(a.shape)} for a, sp, s in items]
    tmp = folder / f"{split}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, folder / f"{split}.npz")
    (folder / f"{split}.json").write_text(json.dumps(index, indent=1))


def read_manifest_counts(path: Path = DEFAULT_MANIFEST) -> dict[str, int]:
    """Slice counts per source_id recorded in an existing manifest (empty if none)."""
    if not Path(path).exists():
        return {}
    with open(path, newline="") as f:
        return {r["source_id"]: int(r["slices"]) for r in csv.DictReader(f) if r["slices"]}


def write_manifest(path: Path = DEFAULT_MANIFEST, counts: dict[str, int] | None = None) -> None:
    """The manifest CSV: one row per source, with its licence, split and slice count.

    Counts of sources not in ``counts`` are kept from the existing manifest.
    """
    counts = {**read_manifest_counts(path), **(counts or {})}
    fields = ["group", "source_id", "package_or_generator", "file", "modality", "licence", "split", "slices", "note"]
    package = {"pydicom": "pydicom", "pydicom-data": "pydicom-data", "nilearn-mni152": "nilearn",
               "dipy-npy": "dipy", "dipy-nifti": "dipy", "skimage": "scikit-image", "sklearn": "scikit-learn",
               "phantom": "durr.data.phantoms"}
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for s in SOURCES:
            writer.writerow({"group": s.group, "source_id": s.source_id, "package_or_generator": package[s.kind],
                             "file": s.name if s.kind != "phantom" else f"seeds from {s.seed}",
                             "modality": s.modality, "licence": s.licence, "split": s.split,
                             "slices": counts.get(s.source_id, ""), "note": s.note})


def build_corpus(out: Path = DEFAULT_CORPUS, groups: tuple[str, ...] = ("ct", "mr", "natural"),
                 manifest: Path | None = DEFAULT_MANIFEST, progress: bool = True) -> dict[str, int]:
    """Read every source of ``groups``, write the splits, return slice counts per source."""
    from tqdm.auto import tqdm

    counts: dict[str, int] = {}
    chosen = [s for s in SOURCES if s.group in groups]
    by_split: dict[tuple[str, str], list] = {}
    for src in tqdm(chosen, desc="corpus", unit="source", disable=not progress):
        slices = read_source(src)
        counts[src.source_id] = len(slices)
        by_split.setdefault((src.group, src.split), []).extend((a, sp, src.source_id) for a, sp in slices)
    for (group, split), items in by_split.items():
        _write_split(Path(out) / group, split, items)
    if manifest is not None:
        write_manifest(manifest, counts)
    return counts


def load_split(group: str, split: str, corpus: Path = DEFAULT_CORPUS) -> Slices:
    """Slices of one group and split; a clear error if the corpus was not built."""
    folder = Path(corpus) / group
    if not (folder / f"{split}.npz").exists():
        raise FileNotFoundError(f"{folder / (split + '.npz')}: corpus not built; run `durr corpus build`")
    index = json.loads((folder / f"{split}.json").read_text())
    with np.load(folder / f"{split}.npz") as data:
        images = [data[f"slice_{i:05d}"] for i in range(len(index))]
    return Slices(images, [e["spacing_mm"] for e in index], [e["source_id"] for e in index])
