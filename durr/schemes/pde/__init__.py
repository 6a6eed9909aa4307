"""PDE-Net operators (Long, Lu, Ma, Dong, ICML 2018; Long, Lu, Dong, JCP 2019).

* :class:`MomentBank`: convolutions parameterised by their moment matrices, with the moments
  that fix the derivative order and the order of accuracy frozen (exactly) and the rest learnable;
  :func:`kernel_to_moments` / :func:`moments_to_kernel` (exact in float64).
* :class:`DeltaTBlock`: ``u_{n+1} = u_n + dt sum_alpha c_alpha(x, y) D_alpha u`` (PDE-Net 1).
* :class:`SymNet`, :class:`SymNetBlock`: the symbolic-network block of PDE-Net 2.0.
* :mod:`durr.schemes.pde.simulate`: the finite-difference solver that makes training data;
  :mod:`durr.schemes.pde.fit`: the convection-diffusion demonstration.
* :class:`PDERestorationUnit`: a DURR restoration unit ``F(x, y)`` that is a learned nonlinear
  diffusion.
"""

from durr.schemes.pde.blocks import DeltaTBlock, SymNet, SymNetBlock, fourier_basis, order_name
from durr.schemes.pde.moments import (MomentBank, derivative_orders, kernel_to_moments, moment_matrix_basis,
                                      moments_to_kernel)
from durr.schemes.pde.unit import PDERestorationUnit

__all__ = [
    "MomentBank", "kernel_to_moments", "moments_to_kernel", "moment_matrix_basis", "derivative_orders",
    "DeltaTBlock", "SymNet", "SymNetBlock", "fourier_basis", "order_name", "PDERestorationUnit",
]
