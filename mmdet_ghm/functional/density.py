"""Gradient density of GHM (Li, Liu, Wang, AAAI 2019): bins, counts, weights.

Pure tensor math, no state. All statistics are fp32 (counts int64) whatever the
input dtype, and nothing here synchronises the host with the device.
"""
from typing import Optional

import torch
from torch import Tensor


def bin_index(g: Tensor, bins: int, valid: Optional[Tensor] = None,
              dtype: torch.dtype = torch.int64) -> Tensor:
    """Bin of each gradient norm: ``i`` with ``i / bins <= g < (i + 1) / bins``.

    Computed as ``min(floor(g * bins), bins - 1)`` in the dtype of g, so g = 1 is
    in the last bin (the paper's last edge 1 + 1e-6) and the Triton kernels bin
    exactly alike. (mmdet compares g with the rounded edges ``fl(i / bins)``
    instead; the two differ only for g within an ulp of an edge.)

    Args:
        g (Tensor): Gradient norms in [0, 1], any shape.
        bins (int): Number of bins.
        valid (Tensor, optional): Bool mask broadcastable to g; False for
            ignored elements.
        dtype (torch.dtype): int64, or uint8 for bins < 255 (less memory
            traffic; only the CPU's ``bincount`` takes it).

    Returns:
        Tensor: bins of g's shape; ignored elements get the overflow index
        ``bins``, which no weight is given to.
    """
    idx = (g * bins).to(dtype).clamp_(max=bins - 1)
    return idx if valid is None else idx.masked_fill_(~valid, bins)


def bin_counts(idx: Tensor, bins: int, weights: Optional[Tensor] = None) -> Tensor:
    """Number of elements (or sum of their ``weights``) per bin, ignoring the
    overflow index ``bins``.

    On the CPU ``bincount``; elsewhere ``scatter_add_``, because ``bincount``
    reads the maximum back to the host on CUDA to size its output.

    Returns:
        Tensor: (bins,) int64 counts, or sums in the dtype of ``weights``.
    """
    flat = idx.reshape(-1)
    if weights is not None:
        weights = weights.reshape(-1)
    if flat.device.type == 'cpu':
        sums = torch.bincount(flat, weights, minlength=bins + 1)[:bins]
        # bincount of no elements is int64 even with float weights
        return sums if weights is None else sums.to(weights.dtype)
    if weights is None:
        weights = torch.ones(1, dtype=torch.int64, device=flat.device).expand_as(flat)
    sums = torch.zeros(bins + 1, dtype=weights.dtype, device=flat.device)
    return sums.scatter_add_(0, flat.long(), weights)[:bins]


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
    n = nonempty.sum().clamp(min=1).float()
    safe_density = torch.where(nonempty, density, torch.ones_like(density))
    weights = torch.where(nonempty, tot / safe_density / n,
                          torch.zeros_like(density))
    return torch.cat([weights, weights.new_zeros(1)]), acc_sum, tot
