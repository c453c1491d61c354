"""Equalized focal loss in PyTorch: the implementation of ``equalized_focal_triton``
for the CPU and for GPUs whose triton cannot build the kernels. The focal loss
with one gamma per class, and the sums of ``|d loss / dx|`` per class over the
positive and the negative elements, computed in the same pass. Index labels run
focal_torch's hand-written forward and backward by row chunks (its
``IndexLabelFocal`` with a (C,) gamma and the sums); dense (N, C)
targets the elementwise ``functional.sigmoid_focal_loss`` through autograd."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..functional.dtype import compute_dtype
from ..functional.focal import sigmoid_focal_loss
from .focal_torch import IndexLabelFocal, column_factors


def equalized_focal_index_loss(logits: Tensor, labels: Tensor, weight: Optional[Tensor],
                               row_weight: bool, gamma: Tensor, coefficients,
                               reduce: bool = True) -> Tuple[Tensor, Tensor]:
    """The focal loss of index labels with one gamma per class, times the label
    weights, summed or elementwise, and its gradient sums.

    Args:
        logits (Tensor): (N, C) logits, any float dtype (gradient in that dtype).
        labels (Tensor): (N,) int64 labels in [0, C], C = background.
        weight (Tensor, optional): (N, 1) or (N, C) label weights of the
            compute dtype.
        row_weight (bool): ``weight`` holds one weight per row (N, 1).
        gamma (Tensor): (C,) fp32 focusing factor of each class.
        coefficients (inputs.FocalCoefficients): alpha, class and positive weights.
        reduce (bool): Return the sum instead of the (N, C) losses.

    Returns:
        tuple[Tensor, Tensor]: the loss, and (2, C) fp32 sums over the elements
        of each class column of ``|d loss / dx|`` (label weights included) of
        the positive (row 0) and the negative (row 1) elements.
    """
    dtype = compute_dtype(logits)
    sums = logits.new_zeros(2, logits.shape[1], dtype=dtype)
    loss = IndexLabelFocal.apply(logits, labels, weight, row_weight, gamma.to(dtype),
                                 *column_factors(coefficients, dtype), reduce, sums)
    return loss, sums.float()


def equalized_focal_dense_loss(logits: Tensor, targets: Tensor, weight: Tensor,
                               gamma: Tensor, coefficients,
                               reduce: bool = True) -> Tuple[Tensor, Tensor]:
    """As :func:`equalized_focal_index_loss` for (N, C) targets (soft ones
    included: an element's ``|d loss / dx|`` counts ``y`` times as positive and
    ``1 - y`` times as negative) and (N, C) label weights, all three of the
    compute dtype; the loss through autograd, the sums from the gradient of a
    detached copy."""
    def elementwise(x):
        return sigmoid_focal_loss(x, targets, gamma.to(x.dtype), coefficients.alpha,
                                  coefficients.class_weight,
                                  coefficients.pos_weight) * weight

    with torch.enable_grad():
        x = logits.detach().requires_grad_()
        grad, = torch.autograd.grad(elementwise(x).sum(), x)
    magnitude = grad.abs()
    sums = torch.stack(((magnitude * targets).sum(0), (magnitude * (1 - targets)).sum(0)))
    loss = elementwise(logits)
    return (loss.sum() if reduce else loss), sums.float()
