"""The seam between the losses and their two implementations of each computation:
Triton kernels (``*_triton.py``, with their launchers and autograd Functions) and
PyTorch (``*_torch.py``), chosen per call by ``dispatch``; ``inputs`` checks and
lays out the arguments once for both. The entries are in ``seam``."""
from .dispatch import (IMPLS, check_impl, interpreter_support, kernel_support,
                       triton_available, use_triton)
from .inputs import (ClassificationInputs, FocalCoefficients, RegressionInputs,
                     classification_inputs, regression_inputs)
from .seam import (equalized_focal, ghmc_histogram, ghmc_weighted_bce, ghmr_histogram, sigmoid_focal,
                   weighted_asl1)

__all__ = [
    'IMPLS', 'check_impl', 'interpreter_support', 'kernel_support', 'triton_available',
    'use_triton', 'ClassificationInputs', 'FocalCoefficients', 'RegressionInputs',
    'classification_inputs', 'regression_inputs', 'equalized_focal', 'ghmc_histogram', 'ghmc_weighted_bce',
    'ghmr_histogram', 'sigmoid_focal', 'weighted_asl1'
]
