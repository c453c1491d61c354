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

    Computed as ``min(floor(g * bins), bins - 1)`` in the dtype of g, so g = 1 is
    in the last bin (the paper's last edge 1 + 1e-6) and the Triton kernels bin
    exactly alike. (mmdet compares g with the rounded edges ``fl(i / bins)``
    instead; the two differ only for g within an ulp of an edge.)

    Args:
        g (Tensor): Gradient norms in [0, 1], any shape.
        bins (int): Number of bins.
        valid (Tensor, optional): Bool mask broadcastable to g; False for
            ignored elements.

    Returns:
        Tensor: int32 bins of g's shape (``index_select`` and the CPU's
        ``bincount`` take them without a copy); ignored elements get the
        overflow index ``bins``, which no weight is given to.
    """
    return scaled_bin_index(g * bins, *bin_limits(bins, valid, g.dtype))


def bin_limits(bins: int, valid: Optional[Tensor], dtype: torch.dtype):
    """``(low, top)`` such that ``g * bins`` clamped into [low, top] and truncated
    is :func:`bin_index`: [0, bins - 1] for valid elements, [bins, bins] (the
    overflow index) for ignored ones.

    Tensors of the mask's shape (a mask of one column handles whole rows
    without a pass over all (N, C) elements for it), or ``(None, bins - 1)``
    without a mask.
    """
    if valid is None:
        return None, bins - 1
    ignored = (~valid).to(dtype)
    return ignored * bins, ignored + (bins - 1)


def scaled_bin_index(scaled: Tensor, low: Optional[Tensor], top) -> Tensor:
    """``scaled = g * bins`` clamped into [low, top] and truncated to int32 (the
    floor, as scaled >= 0), in the buffer of an fp32 ``scaled``: its int32 view
    is the result (no new (N, C) tensor). Two one-sided clamps: a clamp with
    both bounds as tensors takes a slow path."""
    if low is not None:
        scaled.clamp_(min=low)
    scaled.clamp_(max=top)
    if scaled.dtype != torch.float32:
        return scaled.to(torch.int32)
    return scaled.view(torch.int32).copy_(scaled)


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
