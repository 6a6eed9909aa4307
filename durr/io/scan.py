"""The one in-memory scan type every entry point passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES = ("CT", "MR", "OT")


@dataclass
class Scan:
    """A 2D slice or 3D volume in physical units, plus what is needed to write it back.

    Attributes
    ----------
    array : np.ndarray, float32, shape (H, W) for a slice or (Z, H, W) for a volume.
        CT in Hounsfield units (after RescaleSlope/Intercept), MR in scanner units (>= 0),
        other images in [0, 1] (8/16-bit images divided by their maximum code).
        For a volume, axis 0 is the slice axis (DICOM series order, or NIfTI's third axis).
    modality : "CT", "MR" or "OT".
    spacing : (row, column) pixel spacing in mm, or (slice, row, column) for a volume.
    affine : 4x4 voxel-to-world matrix (NIfTI's, or built from DICOM geometry); None for images.
    source_format : "dicom" (one file, single or multi-frame), "dicom-series" (a folder),
        "nifti", "png", "tiff" or "npy".
    source_path : where it was read from.
    meta : format-specific things needed to write it back (pydicom datasets, NIfTI header,
        image bit depth, ...). Treat as opaque outside ``durr.io``.
    """

    array: np.ndarray
    modality: str
    spacing: tuple[float, ...]
    affine: np.ndarray | None = None
    source_format: str = "npy"
    source_path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_volume(self) -> bool:
        return self.array.ndim == 3

    @property
    def slices(self) -> np.ndarray:
        """The image as a stack of 2D slices, shape (Z, H, W) (Z = 1 for a slice)."""
        return self.array if self.is_volume else self.array[None]

    def with_array(self, array: np.ndarray) -> "Scan":
        """A copy carrying a new image of the same shape (e.g. the restored one)."""
        array = np.asarray(array, dtype=np.float32)
        if array.shape != self.array.shape:
            raise ValueError(f"new image shape {array.shape} != scan shape {self.array.shape}")
        return Scan(array, self.modality, self.spacing, self.affine, self.source_format,
                    self.source_path, self.meta)
