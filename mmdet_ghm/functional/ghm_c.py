"""GHM-C (Li, Liu, Wang, AAAI 2019), the whole loss in plain PyTorch: the
reference the tests hold ``GHMCLoss`` against, on both implementations."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .density import bin_index, density_weights
from .dtype import compute_dtype


def ghmc_loss(logits: Tensor, targets: Tensor, weight: Optional[Tensor], acc_sum: Tensor,
              bins: int = 30, momentum: float = 0.75) -> Tuple[Tensor, Tensor]:
    """Mean GHM-C of one call: ``sum(BCE * tot / GD(g) / n * weight) / tot``.

    Args:
        logits (Tensor): (N, C) logits.
        targets (Tensor): (N, C) targets in [0, 1] (``one_hot_labels`` of labels).
        weight (Tensor, optional): Label weights broadcastable to (N, C), 0 = ignored.
        acc_sum (Tensor): (bins,) fp32 EMA of the bin counts before the call.
        bins (int): Number of bins. momentum (float): EMA momentum.

    Returns:
        tuple[Tensor, Tensor]: the loss (0-dim) and the EMA after the call.
    """
    x = logits.to(compute_dtype(logits))
    y = targets.to(x.dtype)
    weight = torch.ones_like(x) if weight is None else weight.to(x.dtype).expand_as(x)
    g = (torch.sigmoid(x.detach()) - y).abs()
    idx = bin_index(g, bins, weight > 0).long()
    counts = torch.bincount(idx.flatten(), minlength=bins + 1)[:bins]
    bin_weights, acc_sum, tot = density_weights(counts, acc_sum, momentum)
    bce = F.binary_cross_entropy_with_logits(x, y, reduction='none')
    return (bce * bin_weights[idx] * weight).sum() / tot.clamp(min=1), acc_sum
