"""Sigmoid focal loss (Lin et al., ICCV 2017) with a numerically stable modulator."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .dtype import compute_dtype


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
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    loss = F.binary_cross_entropy_with_logits(
        x, y, pos_weight=pos_weight, reduction='none')
    loss = loss * focal_modulator(x, y, gamma, binary_targets)
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    if class_weight is not None:
        loss = loss * class_weight
    return loss
