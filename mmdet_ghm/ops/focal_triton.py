"""Fused sigmoid focal loss: forward and backward kernels, launchers, autograd Function.

Covers ``SigmoidFocalLoss`` and the sigmoid variants of
``ClassBalancedFocalLoss``: index or dense targets, scalar / per-class alpha,
per-class column weights (the class-balanced weights) and pos_weight. The
modulator is computed in log space as in ``functional.focal_modulator``:
``log(1 - p_t) = logaddexp(log y + logsig(-x), log(1 - y) + logsig(x))``.
PyTorch implementation: ``focal_torch`` (index labels with a hand-written
backward, dense targets through autograd).
"""
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .dispatch import build, launch
from .triton_common import (BLOCK, block_partials, elements, elements_grid,
                            load_elements, load_grad_out, log_sigmoid, placeholders,
                            store_loss)


@triton.jit
def _focal_terms(x, y, offs, C, alpha_ptr, class_weight_ptr, pos_weight_ptr,
                 gamma, USE_ALPHA: tl.constexpr):
    """BCE, log(1 - p_t), the modulator and the constant factor of each element."""
    col = offs % C
    pos_weight = tl.load(pos_weight_ptr + col)
    log_p = log_sigmoid(x)
    log_q = log_sigmoid(-x)
    bce = -(pos_weight * y * log_p + (1.0 - y) * log_q)
    u = tl.log(y) + log_q  # -inf where y = 0: contributes exp(-inf) = 0 below
    v = tl.log(1.0 - y) + log_p
    m = tl.maximum(u, v)
    log_one_minus_pt = m + tl.log(tl.exp(u - m) + tl.exp(v - m))
    modulator = tl.exp(gamma * log_one_minus_pt)
    factor = tl.load(class_weight_ptr + col)
    if USE_ALPHA:
        alpha = tl.load(alpha_ptr + col)
        factor = factor * (alpha * y + (1.0 - alpha) * (1.0 - y))
    return bce, log_p, log_q, log_one_minus_pt, modulator, factor, pos_weight


@triton.jit
def _focal_forward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr, alpha_ptr,
                          class_weight_ptr, pos_weight_ptr, out_ptr, n, C, gamma,
                          TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                          WEIGHT_MODE: tl.constexpr, USE_ALPHA: tl.constexpr,
                          REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr, pid,
                                        n, C, TARGET_IS_INDEX, HAS_SCORE, WEIGHT_MODE,
                                        BLOCK)
    bce, _, _, _, modulator, factor, _ = _focal_terms(
        x, y, offs, C, alpha_ptr, class_weight_ptr, pos_weight_ptr, gamma, USE_ALPHA)
    store_loss(out_ptr, pid, offs, mask, factor * modulator * bce * w, REDUCE)


@triton.jit
def _focal_backward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr, alpha_ptr,
                           class_weight_ptr, pos_weight_ptr, grad_out_ptr, grad_pred_ptr,
                           n, C, gamma, TARGET_IS_INDEX: tl.constexpr,
                           HAS_SCORE: tl.constexpr, WEIGHT_MODE: tl.constexpr,
                           USE_ALPHA: tl.constexpr, REDUCE: tl.constexpr,
                           BLOCK: tl.constexpr):
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                        tl.program_id(0), n, C, TARGET_IS_INDEX,
                                        HAS_SCORE, WEIGHT_MODE, BLOCK)
    bce, log_p, log_q, log_one_minus_pt, modulator, factor, pos_weight = _focal_terms(
        x, y, offs, C, alpha_ptr, class_weight_ptr, pos_weight_ptr, gamma, USE_ALPHA)
    grad_out = load_grad_out(grad_out_ptr, offs, mask, REDUCE)
    p = tl.sigmoid(x)
    d_bce = (1.0 - y) * p - pos_weight * y * (1.0 - p)
    # d log(1 - p_t) / dx = (1 - 2y) p (1 - p) / (1 - p_t), in log space
    d_log_one_minus_pt = (1.0 - 2.0 * y) * tl.exp(log_p + log_q - log_one_minus_pt)
    d_modulator = gamma * modulator * d_log_one_minus_pt
    grad = factor * w * (d_modulator * bce + modulator * d_bce) * grad_out
    tl.store(grad_pred_ptr + offs, grad, mask=mask)


def _launch_backward(run, tensors, vectors, grad_out, grad_pred, num_classes, gamma,
                     flags):
    pred = tensors[0]
    run(_focal_backward_kernel, elements_grid(pred), *tensors, *vectors, grad_out,
        grad_pred, pred.numel(), num_classes, gamma, **flags)


class SigmoidFocal(torch.autograd.Function):
    """Sum (or elementwise) of ``w_c * alpha_t * (1 - p_t)^gamma * BCE_pw * label_weight``.
    Arguments as :func:`sigmoid_focal_loss`."""

    @staticmethod
    def forward(ctx, pred, target, score, weight, weight_layout: int, gamma, alpha,
                class_weight, pos_weight, reduce: bool):
        els = elements(pred, target, score, weight, weight_layout)
        tensors = els.pred, els.target, els.score, els.weight
        num_classes = els.num_cols
        # without USE_ALPHA no alpha is read: any fp32 (C,) pointer stands in
        vectors = (class_weight if alpha is None else alpha, class_weight, pos_weight)
        out = (block_partials(els) if reduce else
               torch.empty(pred.shape, dtype=torch.float32, device=pred.device))
        flags = dict(TARGET_IS_INDEX=els.target_is_index, HAS_SCORE=els.has_score,
                     WEIGHT_MODE=els.weight_mode, USE_ALPHA=alpha is not None,
                     REDUCE=reduce, BLOCK=BLOCK)
        if els.numel:
            launch(_focal_forward_kernel, els.grid(), *tensors, *vectors, out, els.numel,
                   num_classes, float(gamma), **flags)
            if ctx.needs_input_grad[0]:  # the backward's specialisation, built now
                _launch_backward(build, tensors, vectors, *placeholders(pred), num_classes,
                                 float(gamma), flags)
        ctx.save_for_backward(*tensors, *vectors)
        ctx.gamma, ctx.flags, ctx.num_classes = float(gamma), flags, num_classes
        return out.sum() if reduce else out

    @staticmethod
    def backward(ctx, grad_out):
        pred, target, score, weight, *vectors = ctx.saved_tensors
        grad_pred = torch.empty_like(pred)
        if pred.numel():
            _launch_backward(launch, (pred, target, score, weight), vectors,
                             grad_out.float().contiguous(), grad_pred, ctx.num_classes,
                             ctx.gamma, ctx.flags)
        return (grad_pred, ) + (None, ) * 9


def coefficient_vectors(coefficients, num_classes: int, device) -> Tuple[Optional[Tensor], ...]:
    """(C,) fp32 vectors of alpha (None without), class and positive weights
    (ones where not given), on ``device``: a focal loss's
    ``inputs.FocalCoefficients`` as the kernels read them."""
    def vector(value):
        if isinstance(value, Tensor):
            return value.to(device=device, dtype=torch.float32).contiguous()
        return torch.full((num_classes, ), 1.0 if value is None else float(value),
                          dtype=torch.float32, device=device)

    alpha, class_weight, pos_weight = coefficients
    return (None if alpha is None else vector(alpha), vector(class_weight),
            vector(pos_weight))


def sigmoid_focal_loss(pred: Tensor, target: Tensor, score, weight, weight_layout: int,
                       gamma: float, alpha, class_weight: Tensor, pos_weight: Tensor,
                       reduce: bool) -> Tensor:
    """Triton focal loss body.

    Args:
        pred (Tensor): (N, C) logits, fp32 / fp16 / bf16.
        target (Tensor): (N,) index labels (C = background) or (N, C) targets.
        score (Tensor | None): (N,) scores of a quality target (with index labels).
        weight (Tensor | None): (N,) or (N, C) label weights, 0 = ignored.
        weight_layout (int): ``weight``'s, from ``inputs.weight_layout``.
        gamma (float): Focusing parameter.
        alpha (Tensor | None): (C,) fp32 alpha of each class, or None (no alpha).
        class_weight (Tensor): (C,) fp32 weight of each class column.
        pos_weight (Tensor): (C,) fp32 weight of each class's positive term.
        reduce (bool): Return the fp32 sum instead of the (N, C) fp32 losses.
    """
    return SigmoidFocal.apply(pred, target, score, weight, weight_layout, gamma, alpha,
                              class_weight, pos_weight, reduce)
