"""GHM-R's Authentic Smooth L1 in PyTorch, on every device (a few elementwise ops
on the positive anchors' deltas): its terms, its gradient norm, and the weighted
loss with a hand-written backward. ``functional.ghm_r`` holds the reference."""
from typing import Optional, Tuple

import torch
from torch import Tensor


def asl1_terms(pred: Tensor, target: Tensor, dtype: torch.dtype,
               mu: float) -> Tuple[Tensor, Tensor]:
    """``d = pred - target`` and ``root = sqrt(d^2 + mu^2)`` in ``dtype``, detached:
    ASL1 is ``root - mu``, its gradient ``d / root`` and the gradient norm
    ``|d| / root`` (in [0, 1))."""
    with torch.no_grad():
        diff = pred.to(dtype) - target.to(dtype)
        return diff, torch.sqrt(diff * diff + mu * mu)


def gradient_norm(diff: Tensor, root: Tensor) -> Tensor:
    """``|d| / root`` in fp32: what GHM-R bins."""
    return (diff.abs() / root).float()


class WeightedASL1(torch.autograd.Function):
    """``ASL1(d) * weight`` summed or elementwise. Arguments as
    :func:`weighted_asl1`.

    The backward computes ``((grad_out * weight) / root) * d``, the gradient
    of ``sqrt(d * d + mu^2) - mu`` through autograd rounded alike (its ``/ (2 *
    root)`` and the two equal halves of ``d * d`` cancel exactly), from the
    saved ``d``, ``root`` and ``weight`` alone.
    """

    @staticmethod
    def forward(ctx, pred, diff, root, weight, mu: float, reduce: bool, index):
        loss = (root - mu).mul_(weight)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(diff, root, weight, index)
            ctx.pred_dtype, ctx.pred_shape = pred.dtype, pred.shape
        if reduce:
            return loss.sum()
        return loss if index is None else _scatter(loss, index, pred.shape)

    @staticmethod
    def backward(ctx, grad_out):
        diff, root, weight, index = ctx.saved_tensors
        if index is not None and grad_out.dim():
            grad_out = grad_out.index_select(0, index)
        grad = (grad_out * weight).div_(root).mul_(diff).to(ctx.pred_dtype)
        if index is not None:
            grad = _scatter(grad, index, ctx.pred_shape)
        return grad, None, None, None, None, None, None


def _scatter(values: Tensor, index: Tensor, shape) -> Tensor:
    """A zero tensor of ``shape`` holding the rows ``values`` at ``index``."""
    return values.new_zeros(shape).index_copy_(0, index, values)


def weighted_asl1(pred: Tensor, diff: Tensor, root: Tensor, weight: Tensor, mu: float,
                  reduce: bool, index: Optional[Tensor] = None) -> Tensor:
    """Sum (or elementwise losses) of ``ASL1(pred - target) * weight``.

    Args:
        pred (Tensor): (M, k) predictions, any float dtype: only the gradient
            flows to it (of its shape and dtype).
        diff (Tensor): ``pred - target`` in the compute dtype, detached: (M, k)
            as pred, or with ``index`` its (R, k) rows at index.
        root (Tensor): ``sqrt(diff^2 + mu^2)`` (:func:`asl1_terms`).
        weight (Tensor): Elementwise weights of diff's shape.
        mu (float): ASL1 parameter.
        reduce (bool): Return the sum instead of the elementwise losses.
        index (Tensor, optional): (R,) int64 indices of the rows of pred in
            ``diff``; the other rows have loss and gradient 0.

    Returns:
        Tensor: the 0-dim sum, or the losses of pred's shape.
    """
    return WeightedASL1.apply(pred, diff, root, weight, mu, reduce, index)
