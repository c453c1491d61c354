"""Triton kernels (gradient histogram, GHM-C loss, focal loss) and impl dispatch.

The kernels are importable only with a triton that can build them; callers
reach them after ``use_triton`` has said yes, which implies that.
"""
from .dispatch import (IMPLS, check_impl, interpreter_support, kernel_grad_or_twin,
                       kernel_or_twin, kernel_support, triton_available, use_triton)

__all__ = ['IMPLS', 'check_impl', 'interpreter_support', 'kernel_grad_or_twin',
           'kernel_or_twin', 'kernel_support', 'triton_available', 'use_triton']

if kernel_support() is None:
    from .focal import sigmoid_focal_loss_triton
    from .ghmc import ghmc_weighted_bce
    from .histogram import GHMC_NORM, GHMR_NORM, gradient_histogram

    __all__ += ['sigmoid_focal_loss_triton', 'ghmc_weighted_bce', 'gradient_histogram',
                'GHMC_NORM', 'GHMR_NORM']
