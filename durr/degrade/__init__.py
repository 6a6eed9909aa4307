"""Degradation physics of PROTOCOL.md section 2, one module per family, and a registry.

>>> import torch
>>> from durr.degrade import get_degradation
>>> deg = get_degradation("gaussian")
>>> clean = torch.rand(2, 1, 32, 32)                                     # (B, 1, H, W)
>>> noisy, reference = deg(clean, 25.0, generator=torch.Generator().manual_seed(0))
>>> noisy.shape
torch.Size([2, 1, 32, 32])

A level may differ per image (``torch.tensor([10.0, 30.0])``); ``deg.apply_numpy(array, level,
seed)`` degrades a 2D or 3D numpy array. New families subclass ``Degradation`` and call
``register``.

Families: ``gaussian`` (OT, [0, 1]), ``mr-rician`` (MR, scanner units), ``ct-lowdose`` (CT, HU),
``blur`` (any unit, no noise), ``ct-sparseview`` (CT, HU; level = number of views),
``mr-undersample`` (MR, scanner units; level = k-space acceleration R). ``load_degradation(spec)``
also builds user-defined ones: a ``module:callable`` or a YAML file composing families
(``durr.degrade.custom``).
"""

from durr.degrade.base import Degradation, Degraded
from durr.degrade.blur import Blur
from durr.degrade.ct_lowdose import CTLowDose
from durr.degrade.ct_sparseview import CTSparseView
from durr.degrade.custom import load_degradation
from durr.degrade.gaussian import Gaussian
from durr.degrade.mr_undersample import MRUndersample
from durr.degrade.registry import degradation_names, get_degradation, register
from durr.degrade.rician import Rician

__all__ = ["Degradation", "Degraded", "get_degradation", "degradation_names", "register",
           "Gaussian", "Rician", "CTLowDose", "Blur", "load_degradation",
           "CTSparseView", "MRUndersample"]

for _family in (Gaussian, Rician, CTLowDose, Blur, CTSparseView, MRUndersample):
    register(_family)
del _family
