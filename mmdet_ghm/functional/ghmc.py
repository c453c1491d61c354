"""GHM-C's two stateless steps in PyTorch, twins of the Triton kernels.

Index labels are never expanded to one-hot: every column of a row is treated as
a negative and the one label column of each positive row is fixed afterwards
with a gather/scatter of N elements. The weighted BCE is summed per bin in the
forward (``bincount`` with weights) and has a hand-written backward from the
saved sigmoid, so no N x C autograd temporaries are kept.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import bin_counts, bin_index
from .targets import label_columns


def ghmc_bins(logits: Tensor, target: Tensor, weight: Optional[Tensor],
              bins: int) -> Tuple[Tensor, Tensor]:
    """Sigmoid and gradient-norm bin ``g = |sigmoid(x) - y|`` of each element.

    Args:
        logits (Tensor): (N, C) logits, fp32 (or fp64).
        target (Tensor): (N,) labels in [0, C] (C = background) or (N, C) targets.
        weight (Tensor, optional): (N, 1) or (N, C) label weights, 0 = ignored.
        bins (int): Number of bins.

    Returns:
        tuple[Tensor, Tensor]: the sigmoid (N, C) and the bins (N, C), uint8 on
        the CPU for bins < 255, else int64; ``bins`` for ignored elements.
    """
    dtype = torch.uint8 if logits.device.type == 'cpu' and bins < 255 else torch.int64
    p = torch.sigmoid(logits)
    if target.dim() == 1:
        col, pos = label_columns(target, p.shape[1])
        idx = bin_index(p, bins, dtype=dtype)  # g = p where y = 0
        p_col = p.gather(1, col)
        idx.scatter_(1, col, bin_index(torch.where(pos, 1 - p_col, p_col), bins,
                                       dtype=dtype))
    else:
        idx = bin_index((p - target).abs(), bins, dtype=dtype)
    if weight is not None:
        idx.masked_fill_(weight <= 0, bins)
    return p, idx


class WeightedBinaryCrossEntropy(torch.autograd.Function):
    """``BCE(x, y) * bin_weights[idx] * weight``, summed or elementwise."""

    @staticmethod
    def forward(ctx, logits, target, p, idx, bin_weights, weight, reduce: bool):
        x = logits.to(p.dtype)
        bin_weights = bin_weights.to(p.dtype)
        loss = F.softplus(x)  # BCE of y = 0; minus x * y below
        if target.dim() == 1:
            col, pos = label_columns(target, x.shape[1])
            loss.scatter_add_(1, col, -x.gather(1, col) * pos)
        else:
            loss.sub_(x * target)
        if weight is not None:
            loss.mul_(weight)
        ctx.save_for_backward(target, p, idx, bin_weights, weight)
        ctx.logits_dtype = logits.dtype
        if reduce:
            bins = bin_weights.numel() - 1
            return torch.dot(bin_counts(idx, bins, loss), bin_weights[:bins])
        return loss.mul_(bin_weights.take(idx.long()))

    @staticmethod
    def backward(ctx, grad_out):
        target, p, idx, bin_weights, weight = ctx.saved_tensors
        elem_weight = bin_weights.take(idx.long())
        if weight is not None:
            elem_weight.mul_(weight)
        if target.dim() == 1:  # (p - y) * w: p * w, minus w at the label columns
            col, pos = label_columns(target, p.shape[1])
            label_weight = elem_weight.gather(1, col) * pos
            grad = elem_weight.mul_(p).scatter_add_(1, col, -label_weight)
        else:
            grad = elem_weight.mul_(p - target)
        grad.mul_(grad_out)
        return grad.to(ctx.logits_dtype), None, None, None, None, None, None


def ghmc_weighted_bce(logits: Tensor, target: Tensor, p: Tensor, idx: Tensor,
                      bin_weights: Tensor, weight: Optional[Tensor],
                      reduce: bool) -> Tensor:
    """Sum (or (N, C) losses) of ``BCE(x, y) * bin_weights[idx] * weight``.

    Args:
        logits (Tensor): (N, C) logits, any float dtype (gradient in that dtype).
        target (Tensor): (N,) labels or (N, C) targets of p's dtype.
        p, idx (Tensor): the output of :func:`ghmc_bins`.
        bin_weights (Tensor): fp32 (bins + 1,) weights, 0 for the overflow bin.
        weight (Tensor, optional): (N, 1) or (N, C) label weights.
        reduce (bool): Return the sum instead of the elementwise losses.
    """
    return WeightedBinaryCrossEntropy.apply(logits, target, p, idx, bin_weights,
                                            weight, reduce)
