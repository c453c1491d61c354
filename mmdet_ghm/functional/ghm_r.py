"""GHM-R (Li, Liu, Wang, AAAI 2019), the whole loss in plain PyTorch: the
reference the tests hold ``GHMRLoss`` against, on both implementations."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .density import bin_index, density_weights
from .dtype import compute_dtype


def asl1(diff: Tensor, mu: float) -> Tensor:
    """Authentic Smooth L1, ``sqrt(d^2 + mu^2) - mu`` of ``diff = pred - target``;
    its gradient ``d / sqrt(d^2 + mu^2)`` has the norm GHM-R bins."""
    return torch.sqrt(diff * diff + mu * mu) - mu


def ghmr_loss(pred: Tensor, target: Tensor, weight: Optional[Tensor], acc_sum: Tensor,
              mu: float = 0.02, bins: int = 10,
              momentum: float = 0.7) -> Tuple[Tensor, Tensor]:
    """Mean GHM-R of one call: ``sum(ASL1(d) * tot / GD(g) / n * weight) / tot``.

    Args:
        pred, target (Tensor): Deltas and their targets, any same shape.
        weight (Tensor, optional): Weights of that shape, 0 = ignored.
        acc_sum (Tensor): (bins,) fp32 EMA of the bin counts before the call.
        mu (float): ASL1 parameter. bins (int): Number of bins. momentum (float):
            EMA momentum.

    Returns:
        tuple[Tensor, Tensor]: the loss (0-dim) and the EMA after the call.
    """
    d = pred.to(compute_dtype(pred)) - target.to(compute_dtype(pred))
    weight = torch.ones_like(d) if weight is None else weight.to(d.dtype)
    g = (d.abs() / torch.sqrt(d * d + mu * mu)).detach()
    idx = bin_index(g, bins, weight > 0).long()
    counts = torch.bincount(idx.flatten(), minlength=bins + 1)[:bins]
    bin_weights, acc_sum, tot = density_weights(counts, acc_sum, momentum)
    return (asl1(d, mu) * bin_weights[idx] * weight).sum() / tot.clamp(min=1), acc_sum
