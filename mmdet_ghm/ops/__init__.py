"""Between the losses and the two implementations of each computation: Triton
kernels (``*_triton.py``, with their launchers and autograd Functions) and
PyTorch (``*_torch.py``), chosen per call by ``dispatch``; ``inputs`` lays out the
arguments (``checks`` checks them) once for both. One function per computation
is in ``computations``."""
from .computations import (equalized_focal, ghmc_histogram, ghmc_weighted_bce,
                           ghmr_histogram, sigmoid_focal, weighted_asl1)
from .dispatch import (IMPLS, check_impl, interpreter_support, kernel_support,
                       triton_available, use_triton)
from .inputs import (ClassificationInputs, FocalCoefficients, RegressionInputs,
                     classification_inputs, probability_logits, regression_inputs,
                     softmax_inputs)

__all__ = [
    'IMPLS', 'check_impl', 'interpreter_support', 'kernel_support', 'triton_available',
    'use_triton', 'ClassificationInputs', 'FocalCoefficients', 'RegressionInputs',
    'classification_inputs', 'probability_logits', 'regression_inputs',
    'softmax_inputs', 'equalized_focal',
    'ghmc_histogram', 'ghmc_weighted_bce', 'ghmr_histogram', 'sigmoid_focal',
    'weighted_asl1'
]
