"""GHM-C weighted BCE: forward and backward kernels, launchers, autograd Function.

Given the per-bin weights (from ``GradientDensity.weigh``), each element's bin is
recomputed from its logit, so nothing of size N x C is stored between the
histogram, the forward and the backward. PyTorch implementation: ``ghmc_torch``.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .dispatch import build, launch
from .triton_common import (BLOCK, Elements, bin_of, block_partials, elements,
                            elements_grid, load_elements, load_grad_out, placeholders,
                            store_loss)


@triton.jit
def _bin_weight(x, y, w, mask, bin_weights_ptr, BINS: tl.constexpr):
    idx = bin_of(tl.abs(tl.sigmoid(x) - y), BINS)
    return tl.load(bin_weights_ptr + idx, mask=mask & (w > 0), other=0.0) * w


@triton.jit
def _ghmc_forward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr, bin_weights_ptr,
                         out_ptr, n, C, TARGET_IS_INDEX: tl.constexpr,
                         HAS_SCORE: tl.constexpr, WEIGHT_MODE: tl.constexpr,
                         BINS: tl.constexpr, REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr, pid,
                                        n, C, TARGET_IS_INDEX, HAS_SCORE, WEIGHT_MODE,
                                        BLOCK)
    bce = tl.maximum(x, 0.0) - x * y + tl.log(1.0 + tl.exp(-tl.abs(x)))
    loss = bce * _bin_weight(x, y, w, mask, bin_weights_ptr, BINS)
    store_loss(out_ptr, pid, offs, mask, loss, REDUCE)


@triton.jit
def _ghmc_backward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr, bin_weights_ptr,
                          grad_out_ptr, grad_pred_ptr, n, C,
                          TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                          WEIGHT_MODE: tl.constexpr, BINS: tl.constexpr,
                          REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                        tl.program_id(0), n, C, TARGET_IS_INDEX,
                                        HAS_SCORE, WEIGHT_MODE, BLOCK)
    grad_out = load_grad_out(grad_out_ptr, offs, mask, REDUCE)
    weight = _bin_weight(x, y, w, mask, bin_weights_ptr, BINS)
    grad = (tl.sigmoid(x) - y) * weight * grad_out
    tl.store(grad_pred_ptr + offs, grad, mask=mask)


def _launch_backward(run, els, bin_weights, grad_out, grad_pred, reduce):
    run(_ghmc_backward_kernel, elements_grid(els.pred), els.pred, els.target, els.score,
        els.weight, bin_weights, grad_out, grad_pred, els.numel, els.num_cols,
        TARGET_IS_INDEX=els.target_is_index, HAS_SCORE=els.has_score,
        WEIGHT_MODE=els.weight_mode, BINS=bin_weights.numel() - 1, REDUCE=reduce,
        BLOCK=BLOCK)


class GHMCBinaryCrossEntropy(torch.autograd.Function):
    """Sum (or elementwise) of ``BCE(x, y) * bin_weight[bin(g)] * label_weight``.
    Arguments as :func:`ghmc_weighted_bce`."""

    @staticmethod
    def forward(ctx, pred, target, score, weight, weight_layout: int, bin_weights,
                reduce: bool):
        els = elements(pred, target, score, weight, weight_layout)
        out = (block_partials(els) if reduce else
               torch.empty(pred.shape, dtype=torch.float32, device=pred.device))
        if els.numel:
            launch(_ghmc_forward_kernel, els.grid(), els.pred, els.target, els.score,
                   els.weight, bin_weights, out, els.numel, els.num_cols,
                   TARGET_IS_INDEX=els.target_is_index, HAS_SCORE=els.has_score,
                   WEIGHT_MODE=els.weight_mode, BINS=bin_weights.numel() - 1,
                   REDUCE=reduce, BLOCK=BLOCK)
            if ctx.needs_input_grad[0]:  # the backward's specialisation, built now
                _launch_backward(build, els, bin_weights, *placeholders(pred), reduce)
        ctx.save_for_backward(els.pred, els.target, els.score, els.weight, bin_weights)
        ctx.layout = els.target_is_index, els.has_score, els.weight_mode, els.num_cols
        ctx.reduce = reduce
        return out.sum() if reduce else out

    @staticmethod
    def backward(ctx, grad_out):
        pred, target, score, weight, bin_weights = ctx.saved_tensors
        grad_pred = torch.empty_like(pred)
        if pred.numel():
            els = Elements(pred, target, score, weight, *ctx.layout)
            _launch_backward(launch, els, bin_weights, grad_out.float().contiguous(),
                             grad_pred, ctx.reduce)
        return (grad_pred, ) + (None, ) * 6


def ghmc_weighted_bce(pred: Tensor, target: Tensor, score, weight, weight_layout: int,
                      bin_weights: Tensor, reduce: bool) -> Tensor:
    """Triton GHM-C loss body; see :class:`GHMCBinaryCrossEntropy`.

    Args:
        pred (Tensor): (N, C) logits, fp32 / fp16 / bf16.
        target (Tensor): (N,) index labels (C = background) or (N, C) targets.
        score (Tensor | None): (N,) scores of a quality target (with index labels).
        weight (Tensor | None): (N,) or (N, C) label weights, 0 = ignored.
        weight_layout (int): ``weight``'s, from ``inputs.weight_layout``.
        bin_weights (Tensor): fp32 weights (bins + 1,), last one 0.
        reduce (bool): Return the fp32 sum instead of the (N, C) fp32 losses.
    """
    return GHMCBinaryCrossEntropy.apply(pred, target, score, weight, weight_layout,
                                        bin_weights, reduce)
