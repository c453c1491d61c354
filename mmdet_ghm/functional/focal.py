"""Sigmoid focal loss (Lin et al., ICCV 2017) with a numerically stable modulator."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .chunks import backward_by_rows, forward_by_rows, rows_of
from .targets import label_columns


def focal_modulator(logits: Tensor, targets: Tensor, gamma: float,
                    binary_targets: bool = False) -> Tensor:
    """``(1 - p_t) ** gamma`` computed in log space.

    ``1 - p_t = y * sigmoid(-x) + (1 - y) * sigmoid(x)``. For 0/1 targets its
    log is ``logsigmoid(-x_t)`` with ``x_t = x`` for y = 1 and ``-x`` for y = 0;
    for soft targets it is a logaddexp of two log-sigmoids. Both are finite for
    any finite logit, where the pow form gives NaN gradients for gamma < 1 at
    p_t = 1.

    Args:
        logits (Tensor): logits x, fp32 or fp64.
        targets (Tensor): targets y of x's dtype in [0, 1], broadcastable to x.
        gamma (float): Focusing parameter >= 0.
        binary_targets (bool): The targets are known to be 0 or 1 (index
            labels), which allows the cheaper form.

    Returns:
        Tensor: the modulator, differentiable w.r.t. the logits.
    """
    if binary_targets:
        log_one_minus_pt = F.logsigmoid(torch.where(targets > 0, -logits, logits))
    else:
        log_one_minus_pt = torch.logaddexp(
            torch.log(targets) + F.logsigmoid(-logits),
            torch.log1p(-targets) + F.logsigmoid(logits))
    return torch.exp(gamma * log_one_minus_pt)


def sigmoid_focal_loss(logits: Tensor,
                       targets: Tensor,
                       gamma: float = 2.0,
                       alpha: Union[float, Tensor, None] = 0.25,
                       class_weight: Optional[Tensor] = None,
                       pos_weight: Optional[Tensor] = None,
                       binary_targets: bool = False) -> Tensor:
    """Elementwise sigmoid focal loss.

    ``FL = w_c * alpha_t * (1 - p_t)^gamma * BCE_pw(x, y)`` with
    ``alpha_t = alpha * y + (1 - alpha) * (1 - y)`` and
    ``BCE_pw = -(pw_c * y * log p + (1 - y) * log(1 - p))``.

    Args:
        logits (Tensor): (N, C) logits, any float dtype.
        targets (Tensor): (N, C) targets in [0, 1] (one-hot or soft).
        gamma (float): Focusing parameter; 0 gives (alpha-weighted) BCE.
        alpha (float | Tensor | None): Positive-class balance, a scalar or one
            value per class (C,); None applies no alpha.
        class_weight (Tensor, optional): (C,) weight of each class column.
        pos_weight (Tensor, optional): (C,) weight of the positive term of
            each class, as ``pos_weight`` of ``binary_cross_entropy_with_logits``.
        binary_targets (bool): The targets are known to be 0 or 1.

    Returns:
        Tensor: (N, C) loss in fp32 (fp64 for fp64 logits).
    """
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    y = targets.to(x.dtype)
    loss = F.binary_cross_entropy_with_logits(
        x, y, pos_weight=pos_weight, reduction='none')
    loss = loss * focal_modulator(x, y, gamma, binary_targets)
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    if class_weight is not None:
        loss = loss * class_weight
    return loss


def _column_coefficients(alpha, class_weight, pos_weight, dtype):
    """Constant factors of the y = 0 and the y = 1 term of each column: scalars
    or (C,) tensors (``(1 - alpha) * w_c`` and ``alpha * w_c * pw_c``)."""
    neg, pos = (1.0, 1.0) if alpha is None else (1 - alpha, alpha)
    if class_weight is not None:
        neg, pos = neg * class_weight, pos * class_weight
    if pos_weight is not None:
        pos = pos * pos_weight
    return tuple(c.to(dtype) if isinstance(c, Tensor) else c for c in (neg, pos))


def _at(coef, col):
    """A column coefficient at each row's label column (N, 1)."""
    return coef[col] if isinstance(coef, Tensor) else coef


class IndexLabelFocal(torch.autograd.Function):
    """Focal loss of index labels with its gradient computed in the forward.

    Every element is first taken as a negative (``p^gamma * softplus(x)``, from
    one softplus and one exp); the one label column of each positive row is then
    fixed on N gathered values. The gradient shares those intermediates and is
    the only N x C tensor kept for the backward. Runs over row chunks (see
    ``chunks``); row weights (N, 1) scale the row sums and the backward's
    ``grad_out``. Arguments as :func:`sigmoid_focal_index_loss`.
    """

    @staticmethod
    def forward(ctx, logits, labels, weight, gamma, alpha, class_weight, pos_weight,
                reduce: bool):
        x = logits.to(torch.promote_types(logits.dtype, torch.float32))
        coefs = _column_coefficients(alpha, class_weight, pos_weight, x.dtype)
        row_weight = weight if weight is not None and weight.shape[1] == 1 else None
        elem_weight = None if row_weight is not None else weight

        def loss_rows(rows, need_grad, losses, grad):
            return _focal_rows(x[rows], labels[rows], rows_of(elem_weight, rows),
                               rows_of(row_weight, rows), gamma, coefs, reduce,
                               need_grad, losses, grad)

        return forward_by_rows(ctx, logits, x, row_weight, reduce, loss_rows)

    @staticmethod
    def backward(ctx, grad_out):
        return (backward_by_rows(ctx, grad_out), ) + (None, ) * 7


def _focal_rows(x, labels, weight, row_weight, gamma, coefs, reduce, need_grad,
                losses, grad):
    """One chunk of :class:`IndexLabelFocal`, as ``loss_rows`` of
    :func:`chunks.forward_by_rows`."""
    neg_coef, pos_coef = coefs
    col, pos = label_columns(labels, x.shape[1])
    sp = F.softplus(x)  # BCE of y = 0; softplus(-x) = sp - x is BCE of y = 1
    log_p = x - sp
    # the label column of each positive row: alpha * (1 - p)^gamma * (sp - x)
    x_col, sp_col = x.gather(1, col), sp.gather(1, col)
    bce_col = sp_col - x_col
    mod_col = torch.exp(-gamma * sp_col)
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
        grad = torch.add(p, one_minus_p.mul_(sp), alpha=gamma,
                         out=one_minus_p if grad is None else grad)
        grad.mul_(mod).mul_(neg_coef)
        if weight is not None:
            grad.mul_(weight)
        p_col = torch.sigmoid(x_col)
        del p, one_minus_p
        pos_grad = mod_col * (-gamma * p_col * bce_col - (1 - p_col))
        grad.scatter_(1, col, torch.where(pos, pos_grad * pos_coef_col,
                                          grad.gather(1, col)))
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


def sigmoid_focal_index_loss(logits: Tensor, labels: Tensor, weight: Optional[Tensor],
                             gamma: float = 2.0, alpha=0.25,
                             class_weight: Optional[Tensor] = None,
                             pos_weight: Optional[Tensor] = None,
                             reduce: bool = True) -> Tensor:
    """:func:`sigmoid_focal_loss` of index labels, times the label weights,
    summed or elementwise, with a hand-written backward.

    Args:
        logits (Tensor): (N, C) logits, any float dtype (gradient in that dtype).
        labels (Tensor): (N,) int64 labels in [0, C], C = background.
        weight (Tensor, optional): (N, 1) or (N, C) label weights of the
            compute dtype (fp32, or fp64 for fp64 logits).
        gamma, alpha, class_weight, pos_weight: as :func:`sigmoid_focal_loss`.
        reduce (bool): Return the sum instead of the (N, C) losses.
    """
    return IndexLabelFocal.apply(logits, labels, weight, gamma, alpha, class_weight,
                                 pos_weight, reduce)
