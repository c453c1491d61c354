"""GHM-C weighted BCE in PyTorch: the implementation of ``ghmc_triton`` for the
CPU and for GPUs whose triton cannot build the kernels.

Index labels are never expanded to one-hot: every column of a row is treated as
a negative and the one label column of each positive row is fixed afterwards
with a gather/scatter of N elements. The forward looks each element's bin
weight up once and computes the gradient with it, so the only N x C tensor kept
for the backward is that gradient.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional.dtype import compute_dtype
from ..functional.targets import label_columns
from .histogram_torch import bin_lookup
from .torch_cpu import backward_by_rows, forward_by_rows, rows_of


class WeightedBinaryCrossEntropy(torch.autograd.Function):
    """``BCE(x, y) * bin_weights[idx] * weight``, summed or elementwise, with
    its gradient ``(p - y) * bin_weights[idx] * weight`` computed in the forward,
    chunk by chunk. Arguments as :func:`ghmc_weighted_bce`.

    Row weights (N, 1), what mmdet's heads pass, scale the row sums and the
    backward's ``grad_out`` rather than every element (one pass fewer).
    """

    @staticmethod
    def forward(ctx, logits, target, weight, row_weight: bool, bin_weights, p, idx,
                reduce: bool):
        x = logits.to(compute_dtype(logits))
        bin_weights = bin_weights.to(x.dtype)
        row_weight = weight if row_weight else None

        def loss_rows(rows, need_grad, losses, grad):
            return _weighted_bce_rows(x[rows], target[rows], p[rows], idx[rows],
                                      bin_weights, rows_of(weight, rows),
                                      rows_of(row_weight, rows), reduce, need_grad,
                                      losses, grad)

        return forward_by_rows(ctx, logits, x, row_weight, reduce, loss_rows)

    @staticmethod
    def backward(ctx, grad_out):
        return (backward_by_rows(ctx, grad_out), ) + (None, ) * 7


def _weighted_bce_rows(x, target, p, idx, bin_weights, weight, row_weight, reduce,
                       need_grad, losses, grad):
    """One chunk, as ``loss_rows`` of :func:`torch_cpu.forward_by_rows`."""
    elem_weight = bin_lookup(bin_weights, idx)
    if weight is not None and row_weight is None:
        elem_weight.mul_(weight)
    loss = F.softplus(x)  # BCE of y = 0; minus x * y below
    index_labels = target.dim() == 1
    if index_labels:
        col, pos = label_columns(target, x.shape[1])
        label_weight = elem_weight.gather(1, col) * pos
        loss.scatter_add_(1, col, -x.gather(1, col) * pos)
    else:
        loss.sub_(x * target)
    loss.mul_(elem_weight)
    if reduce:
        value = (loss.sum() if row_weight is None
                 else (loss.sum(1, keepdim=True) * row_weight).sum())
    else:
        if row_weight is not None:
            loss.mul_(row_weight)
        value = loss if losses is None else losses.copy_(loss)
    if not need_grad:
        return value, None
    # (p - y) * w, in the lookup's buffer unless given one
    out = elem_weight if grad is None else grad
    if index_labels:  # p * w, minus w at the label columns
        grad = torch.mul(elem_weight, p, out=out).scatter_add_(1, col, -label_weight)
    else:
        grad = torch.mul(elem_weight, p - target, out=out)
    return value, grad


def ghmc_weighted_bce(logits: Tensor, target: Tensor, weight: Optional[Tensor],
                      row_weight: bool, bin_weights: Tensor, p: Tensor, idx: Tensor,
                      reduce: bool) -> Tensor:
    """Sum (or (N, C) losses) of ``BCE(x, y) * bin_weights[idx] * weight``.

    Args:
        logits (Tensor): (N, C) logits, any float dtype (gradient in that dtype).
        target (Tensor): (N,) labels or (N, C) targets of the compute dtype.
        weight (Tensor, optional): (N, 1) or (N, C) label weights.
        row_weight (bool): ``weight`` holds one weight per row (N, 1).
        bin_weights (Tensor): fp32 (bins + 1,) weights, 0 for the overflow bin.
        p, idx (Tensor): The sigmoid and int32 bin of each element (N, C), from
            ``histogram_torch.ghmc_binned``.
        reduce (bool): Return the sum instead of the elementwise losses.
    """
    return WeightedBinaryCrossEntropy.apply(logits, target, weight, row_weight,
                                            bin_weights, p, idx, reduce)
