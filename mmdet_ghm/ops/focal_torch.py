"""Sigmoid focal loss in PyTorch: the implementation of ``focal_triton`` for the
CPU and for GPUs whose triton cannot build the kernels. Index labels run a
hand-written forward and backward by row chunks; dense (N, C) targets the
elementwise ``functional.sigmoid_focal_loss`` through autograd."""
import contextlib
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional.focal import sigmoid_focal_loss
from ..functional.dtype import compute_dtype
from ..functional.targets import label_columns
from .torch_cpu import backward_by_rows, forward_by_rows, rows_of


class IndexLabelFocal(torch.autograd.Function):
    """Focal loss of index labels with its gradient computed in the forward.

    Every element is first taken as a negative (``p^gamma * softplus(x)``, from
    one softplus and one exp); the one label column of each positive row is then
    fixed on N gathered values. The gradient shares those intermediates and is
    the only N x C tensor kept for the backward. Runs over row chunks (see
    ``torch_cpu``); row weights (N, 1) scale the row sums and the backward's
    ``grad_out``. Arguments as :func:`sigmoid_focal_index_loss`; the equalized
    focal loss gives a (C,) ``gamma`` and a (2, C) ``sums`` tensor, into which
    the gradient sums of ``_focal_rows`` are added (the gradient is then
    computed even where no backward follows).
    """

    @staticmethod
    def forward(ctx, logits, labels, weight, row_weight: bool, gamma, neg_coef, pos_coef,
                reduce: bool, sums=None):
        x = logits.to(compute_dtype(logits))
        coefs = (neg_coef, pos_coef)
        row_weight, elem_weight = (weight, None) if row_weight else (None, weight)

        def loss_rows(rows, need_grad, losses, grad):
            return _focal_rows(x[rows], labels[rows], rows_of(elem_weight, rows),
                               rows_of(row_weight, rows), gamma, coefs, reduce,
                               need_grad or sums is not None, losses, grad, sums)

        return forward_by_rows(ctx, logits, x, row_weight, reduce, loss_rows)

    @staticmethod
    def backward(ctx, grad_out):
        return (backward_by_rows(ctx, grad_out), ) + (None, ) * 8


def _focal_rows(x, labels, weight, row_weight, gamma, coefs, reduce, need_grad,
                losses, grad, stats=None):
    """One chunk of :class:`IndexLabelFocal`, as ``loss_rows`` of
    :func:`torch_cpu.forward_by_rows`. ``gamma`` is a float or a (C,) tensor
    (one per class, the equalized focal loss); given a (2, C) ``stats``, adds
    the chunk's sums of ``|d loss / dx|`` over positive (row 0) and negative
    (row 1) elements, label weights included (``need_grad`` must be set)."""
    neg_coef, pos_coef = coefs
    col, pos = label_columns(labels, x.shape[1])
    gamma_col = _at(gamma, col)
    sp = F.softplus(x)  # BCE of y = 0; softplus(-x) = sp - x is BCE of y = 1
    log_p = x - sp
    # the label column of each positive row: alpha * (1 - p)^gamma * (sp - x)
    x_col, sp_col = x.gather(1, col), sp.gather(1, col)
    bce_col = sp_col - x_col
    mod_col = torch.exp(-gamma_col * sp_col)
    pos_coef_col = _at(pos_coef, col)
    if weight is not None:
        pos_coef_col = pos_coef_col * weight.gather(1, col)
    # p and 1 - p each from its own exp: either is exact only where it is small
    p = torch.exp(log_p) if need_grad else None
    mod = log_p.mul_(gamma).exp_()  # p^gamma = (1 - p_t)^gamma of y = 0
    if need_grad:
        # d(p^gamma * sp)/dx = p^gamma * (gamma * (1 - p) * sp + p), in the
        # buffer of 1 - p unless given one
        one_minus_p = torch.neg(sp).exp_()
        out = one_minus_p if grad is None else grad
        if isinstance(gamma, Tensor):  # one gamma per class column
            grad = torch.add(p, one_minus_p.mul_(sp).mul_(gamma), out=out)
        else:
            grad = torch.add(p, one_minus_p.mul_(sp), alpha=gamma, out=out)
        grad.mul_(mod).mul_(neg_coef)
        if weight is not None:
            grad.mul_(weight)
        p_col = torch.sigmoid(x_col)
        del p, one_minus_p
        pos_grad = mod_col * (-gamma_col * p_col * bce_col - (1 - p_col)) * pos_coef_col
        grad.scatter_(1, col, torch.where(pos, pos_grad, grad.gather(1, col)))
        if stats is not None:
            _add_gradient_sums(stats, grad, row_weight, col, torch.where(pos, pos_grad, 0.0))
    loss = mod.mul_(sp)
    del sp
    pos_loss = mod_col * bce_col * pos_coef_col
    if weight is not None:
        loss.mul_(weight)
    if reduce:
        per_row = (loss @ neg_coef if isinstance(neg_coef, Tensor)
                   else loss.sum(1) * neg_coef)
        neg_col = loss.gather(1, col) * _at(neg_coef, col)
        per_row = per_row.unsqueeze(1) + torch.where(pos, pos_loss - neg_col, 0.0)
        if row_weight is not None:
            per_row = per_row * row_weight
        return per_row.sum(), grad
    loss.mul_(neg_coef)
    if row_weight is not None:
        loss.mul_(row_weight)
        pos_loss = pos_loss * row_weight
    loss.scatter_(1, col, torch.where(pos, pos_loss, loss.gather(1, col)))
    return (loss if losses is None else losses.copy_(loss)), grad


def _add_gradient_sums(stats, grad, row_weight, col, label_grad):
    """Adds to ``stats`` (2, C) the column sums of ``|grad|`` (times the row
    weights) over the positive elements (row 0) and the negative ones (row 1).
    With 0/1 targets the sign of each element's gradient is known (<= 0 for
    y = 1, >= 0 for y = 0), so one signed column sum (a matrix-vector product)
    and ``label_grad`` (N, 1), the gradient at each positive row's label column
    (0 elsewhere), give both; the clamp keeps a negative sum's rounding (where
    the two nearly cancel) from going below 0."""
    # a matmul under autocast (the loss called in its region) would run in its
    # lower precision; autocast exists for CPU and CUDA tensors only
    no_autocast = (torch.autocast(grad.device.type, enabled=False)
                   if grad.device.type in ('cpu', 'cuda') else contextlib.nullcontext())
    with no_autocast:
        signed = grad.sum(0) if row_weight is None else (row_weight.T @ grad).view(-1)
    if row_weight is not None:
        label_grad = label_grad * row_weight
    minus_pos = torch.zeros_like(signed).scatter_add_(0, col.view(-1), label_grad.view(-1))
    stats[0] -= minus_pos
    stats[1] += (signed - minus_pos).clamp_(min=0)


def _at(coef, col):
    """A column coefficient at each row's label column (N, 1)."""
    return coef[col] if isinstance(coef, Tensor) else coef


def column_factors(coefficients, dtype: torch.dtype):
    """Constant factors of the y = 0 and the y = 1 term of each column: scalars
    or (C,) tensors (``(1 - alpha) * w_c`` and ``alpha * w_c * pw_c``) of a
    focal loss's ``inputs.FocalCoefficients``: its view for this implementation."""
    alpha, class_weight, pos_weight = coefficients
    neg, pos = (1.0, 1.0) if alpha is None else (1 - alpha, alpha)
    if class_weight is not None:
        neg, pos = neg * class_weight, pos * class_weight
    if pos_weight is not None:
        pos = pos * pos_weight
    return tuple(c.to(dtype) if isinstance(c, Tensor) else c for c in (neg, pos))


def sigmoid_focal_index_loss(logits: Tensor, labels: Tensor, weight: Optional[Tensor],
                             row_weight: bool, gamma: float, coefficients,
                             reduce: bool = True) -> Tensor:
    """``functional.sigmoid_focal_loss`` of index labels, times the label weights,
    summed or elementwise, with a hand-written backward.

    Args:
        logits (Tensor): (N, C) logits, any float dtype (gradient in that dtype).
        labels (Tensor): (N,) int64 labels in [0, C], C = background.
        weight (Tensor, optional): (N, 1) or (N, C) label weights of the
            compute dtype (fp32, or fp64 for fp64 logits).
        row_weight (bool): ``weight`` holds one weight per row (N, 1).
        gamma (float): Focusing parameter.
        coefficients (inputs.FocalCoefficients): alpha, class and positive weights.
        reduce (bool): Return the sum instead of the (N, C) losses.
    """
    return IndexLabelFocal.apply(logits, labels, weight, row_weight, gamma,
                                 *column_factors(coefficients, compute_dtype(logits)),
                                 reduce)


def sigmoid_focal_dense_loss(logits: Tensor, targets: Tensor, weight: Tensor, gamma: float,
                             coefficients, reduce: bool = True) -> Tensor:
    """``functional.sigmoid_focal_loss`` of (N, C) targets (or index labels made
    one-hot) times the (N, C) label weights, summed or elementwise, through
    autograd; all three of the compute dtype."""
    loss = sigmoid_focal_loss(logits, targets, gamma, coefficients.alpha,
                              coefficients.class_weight, coefficients.pos_weight) * weight
    return loss.sum() if reduce else loss
