"""Equalized focal loss (Li et al., CVPR 2022, "Equalized Focal Loss for Dense
Long-Tailed Object Detection"): the focal loss with a focusing and a weighting
factor per class, from the accumulated ratio of the class's positive to negative
gradient magnitudes."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .dtype import compute_dtype
from .focal import focal_modulator

# added to the negative gradient sum, as in the authors' code
EPS = 1e-10


def gradient_ratio(pos_grad: Tensor, neg_grad: Tensor) -> Tensor:
    """``g_j = clamp(pos_j / (neg_j + 1e-10), 0, 1)`` of each class."""
    return (pos_grad / (neg_grad + EPS)).clamp(0, 1)


def equalized_factors(pos_neg: Tensor, gamma: float, scale_factor: float
                      ) -> Tuple[Tensor, Tensor]:
    """Focusing factor ``gamma_j = gamma_b + s * (1 - g_j)`` and weighting
    factor ``gamma_j / gamma_b`` of each class (C,), fp32 and detached."""
    gamma_j = gamma + scale_factor * (1 - pos_neg.detach().float())
    return gamma_j, gamma_j / gamma


def equalized_focal_loss(logits: Tensor, targets: Tensor, pos_neg: Tensor,
                         gamma: float = 2.0, alpha: Optional[float] = 0.25,
                         scale_factor: float = 8.0) -> Tensor:
    """Elementwise EFL ``alpha_t * (gamma_j / gamma_b) * (1 - p_t)^gamma_j * BCE``.

    Args:
        logits (Tensor): (N, C) logits, any float dtype.
        targets (Tensor): (N, C) targets in [0, 1].
        pos_neg (Tensor): (C,) gradient ratio g_j of each class (1: focal).
        gamma (float): gamma_b > 0.
        alpha (float, optional): Positive-class balance; None for none.
        scale_factor (float): s.

    Returns:
        Tensor: (N, C) loss in fp32 (fp64 for fp64 logits).
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    gamma_j, weight_j = equalized_factors(pos_neg, gamma, scale_factor)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction='none')
    loss = loss * focal_modulator(x, y, gamma_j.to(x.dtype)) * weight_j.to(x.dtype)
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return loss


def equalized_focal_grad(logits: Tensor, targets: Tensor, pos_neg: Tensor,
                         gamma: float, alpha: Optional[float],
                         scale_factor: float) -> Tensor:
    """``d equalized_focal_loss / d logits`` of each element (N, C), in closed
    form (fp32; fp64 for fp64 logits): the focal loss's, with gamma_j and the
    weighting factor of each column."""
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    gamma_j, weight_j = (f.to(x.dtype) for f in equalized_factors(pos_neg, gamma,
                                                                   scale_factor))
    log_p, log_q = F.logsigmoid(x), F.logsigmoid(-x)
    bce = -(y * log_p + (1 - y) * log_q)
    log_one_minus_pt = torch.logaddexp(torch.log(y) + log_q, torch.log1p(-y) + log_p)
    modulator = torch.exp(gamma_j * log_one_minus_pt)
    # d log(1 - p_t) / dx = (1 - 2y) p (1 - p) / (1 - p_t)
    d_log_one_minus_pt = (1 - 2 * y) * torch.exp(log_p + log_q - log_one_minus_pt)
    grad = modulator * (gamma_j * d_log_one_minus_pt * bce + torch.sigmoid(x) - y)
    grad = grad * weight_j
    if alpha is not None:
        grad = grad * (alpha * y + (1 - alpha) * (1 - y))
    return grad
