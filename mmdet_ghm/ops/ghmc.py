"""GHM-C weighted BCE forward and backward (Triton) and its autograd Function.

Given the per-bin weights (from ``GradientDensity.weigh``), each element's bin is
recomputed from its logit, so nothing of size N x C is stored between the
histogram, the forward and the backward. Twin: ``functional.ghmc``.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .dispatch import kernel_grad_or_twin, launch
from .elements import (BLOCK, bin_of, block_partials, elements, load_elements,
                       load_grad_out, store_loss)


@triton.jit
def _bin_weight(x, y, w, mask, bin_weights_ptr, BINS: tl.constexpr):
    idx = bin_of(tl.abs(tl.sigmoid(x) - y), BINS)
    return tl.load(bin_weights_ptr + idx, mask=mask & (w > 0), other=0.0) * w


@triton.jit
def _ghmc_forward_kernel(pred_ptr, target_ptr, weight_ptr, bin_weights_ptr,
                         out_ptr, n, C, TARGET_IS_INDEX: tl.constexpr,
                         WEIGHT_MODE: tl.constexpr, BINS: tl.constexpr,
                         REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, weight_ptr, pid, n, C,
                                        TARGET_IS_INDEX, WEIGHT_MODE, BLOCK)
    bce = tl.maximum(x, 0.0) - x * y + tl.log(1.0 + tl.exp(-tl.abs(x)))
    loss = bce * _bin_weight(x, y, w, mask, bin_weights_ptr, BINS)
    store_loss(out_ptr, pid, offs, mask, loss, REDUCE)


@triton.jit
def _ghmc_backward_kernel(pred_ptr, target_ptr, weight_ptr, bin_weights_ptr,
                          grad_out_ptr, grad_pred_ptr, n, C,
                          TARGET_IS_INDEX: tl.constexpr, WEIGHT_MODE: tl.constexpr,
                          BINS: tl.constexpr, REDUCE: tl.constexpr,
                          BLOCK: tl.constexpr):
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, weight_ptr,
                                        tl.program_id(0), n, C, TARGET_IS_INDEX,
                                        WEIGHT_MODE, BLOCK)
    grad_out = load_grad_out(grad_out_ptr, offs, mask, REDUCE)
    weight = _bin_weight(x, y, w, mask, bin_weights_ptr, BINS)
    grad = (tl.sigmoid(x) - y) * weight * grad_out
    tl.store(grad_pred_ptr + offs, grad, mask=mask)


class GHMCBinaryCrossEntropy(torch.autograd.Function):
    """Sum (or elementwise) of ``BCE(x, y) * bin_weight[bin(g)] * label_weight``."""

    @staticmethod
    def forward(ctx, pred, target, weight, bin_weights, reduce: bool, owner: str,
                twin_loss):
        els = elements(pred, target, weight)
        bins = bin_weights.numel() - 1
        out = (block_partials(els) if reduce else
               torch.empty(pred.shape, dtype=torch.float32, device=pred.device))
        if els.numel:
            launch(_ghmc_forward_kernel, els.grid(), els.pred, els.target, els.weight,
                   bin_weights, out, els.numel, els.num_cols,
                   TARGET_IS_INDEX=els.target_is_index, WEIGHT_MODE=els.weight_mode,
                   BINS=bins, REDUCE=reduce, BLOCK=BLOCK)
        ctx.save_for_backward(els.pred, els.target, els.weight, bin_weights)
        ctx.layout = (els.target_is_index, els.weight_mode, els.num_cols, reduce)
        ctx.owner, ctx.twin_loss = owner, twin_loss
        return out.sum() if reduce else out

    @staticmethod
    def backward(ctx, grad_out):
        pred, target, weight, bin_weights = ctx.saved_tensors
        target_is_index, weight_mode, num_cols, reduce = ctx.layout

        def kernel(grad_pred):
            launch(_ghmc_backward_kernel, (triton.cdiv(pred.numel(), BLOCK), ),
                   pred, target, weight, bin_weights, grad_out.float().contiguous(),
                   grad_pred, pred.numel(), num_cols, TARGET_IS_INDEX=target_is_index,
                   WEIGHT_MODE=weight_mode, BINS=bin_weights.numel() - 1,
                   REDUCE=reduce, BLOCK=BLOCK)

        grad_pred = kernel_grad_or_twin(ctx.owner, ctx.twin_loss, pred, grad_out, kernel)
        return grad_pred, None, None, None, None, None, None


def ghmc_weighted_bce(pred: Tensor, target: Tensor, weight, bin_weights: Tensor,
                      reduce: bool, owner: str = 'GHMCLoss', twin_loss=None) -> Tensor:
    """Triton GHM-C loss body; see :class:`GHMCBinaryCrossEntropy`.

    Args:
        pred (Tensor): (N, C) logits, fp32 / fp16 / bf16.
        target (Tensor): (N,) index labels (C = background) or (N, C) targets.
        weight (Tensor | None): (N,) or (N, C) label weights, 0 = ignored.
        bin_weights (Tensor): fp32 weights (bins + 1,), last one 0.
        reduce (bool): Return the fp32 sum instead of the (N, C) fp32 losses.
        owner (str): The loss, for the warning if the backward kernel fails.
        twin_loss (callable, optional): Logits -> the same loss by the PyTorch
            twin; the backward falls back to it if its kernel fails (None: raise).
    """
    return GHMCBinaryCrossEntropy.apply(pred, target, weight, bin_weights, reduce,
                                        owner, twin_loss)
