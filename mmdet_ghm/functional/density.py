"""Gradient density of GHM (Li, Liu, Wang, AAAI 2019): the bin rule and the weights.

Pure tensor math, no state. All statistics are fp32 (counts int64) whatever the
input dtype, and nothing here synchronises the host with the device.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def bin_index(g: Tensor, bins: int, valid: Optional[Tensor] = None) -> Tensor:
    """Bin of each gradient norm: ``i`` with ``i / bins <= g < (i + 1) / bins``.

    ``min(floor(g * bins), bins - 1)`` in the dtype of g, so g = 1 is in the
    last bin (the paper's last edge 1 + 1e-6) and the Triton kernels bin exactly
    alike. (mmdet compares g with the rounded edges ``fl(i / bins)`` instead;
    the two differ only for g within an ulp of an edge.)

    Args:
        g (Tensor): Gradient norms in [0, 1], any shape.
        bins (int): Number of bins.
        valid (Tensor, optional): Bool mask broadcastable to g; False for
            ignored elements.

    Returns:
        Tensor: int32 bins of g's shape; ignored elements get the overflow
        index ``bins``, which no weight is given to.
    """
    idx = (g * bins).clamp(max=bins - 1).to(torch.int32)  # the floor: g >= 0
    return idx if valid is None else torch.where(valid, idx, bins)


def density_weights(counts: Tensor, acc_sum: Tensor, momentum: float):
    """Harmonizing weight of each bin from this batch's counts.

    ``beta_i = tot / density_i / n``: density is the bin count (or its EMA
    ``acc_i = m * acc_i + (1 - m) * count_i``, updated for non-empty bins only,
    from zero, no bias correction) and ``n`` the number of NON-empty bins, as in
    the authors' code (GHM_Detection issue #13).

    Args:
        counts (Tensor): int64 counts of shape (bins,).
        acc_sum (Tensor): fp32 EMA of the counts of shape (bins,); not modified.
        momentum (float): EMA momentum in [0, 1); 0 uses the counts directly.

    Returns:
        tuple[Tensor, Tensor, Tensor]: per-bin weights (bins + 1,) fp32 with a
        trailing 0 for the overflow index, the new EMA (bins,), and ``tot``, the
        number of valid elements (0-dim fp32, may be 0).
    """
    counts = counts.float()
    nonempty = counts > 0
    tot = counts.sum()
    if momentum > 0:
        acc_sum = torch.where(nonempty,
                              momentum * acc_sum + (1 - momentum) * counts,
                              acc_sum)
        density = acc_sum
    else:
        density = counts
    # the where picks non-empty bins only, where density > 0 and n >= 1
    n = nonempty.sum()
    weights = torch.where(nonempty, tot / density / n, 0.0)
    return F.pad(weights, (0, 1)), acc_sum, tot
