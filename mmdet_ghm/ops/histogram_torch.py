"""The gradient-density histogram of GHM-C and GHM-R in PyTorch: the
implementation of ``histogram_triton`` for the CPU and for GPUs whose triton
cannot build the kernels. Both bin by ``functional.bin_index``'s rule."""
import functools
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from ..functional.density import bin_index, bin_limits, scaled_bin_index
from ..functional.targets import label_columns
from .torch_chunks import row_chunks, rows_of
from .torch_threads import over_parts


def bin_counts(idx: Tensor, bins: int) -> Tensor:
    """Number of elements per bin, ignoring the overflow index ``bins``.

    On the CPU ``bincount`` (over parts in threads, see ``torch_threads``);
    elsewhere ``scatter_add_``, because ``bincount`` reads the maximum back to
    the host on CUDA to size its output.

    Returns:
        Tensor: (bins,) int64 counts.
    """
    flat = idx.reshape(-1)
    if flat.device.type == 'cpu':
        parts = over_parts(lambda start, stop: torch.bincount(
            flat[start:stop], minlength=bins + 1), flat.numel())
        return functools.reduce(torch.add, parts)[:bins]
    ones = torch.ones(1, dtype=torch.int64, device=flat.device).expand_as(flat)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=flat.device)
    return counts.scatter_add_(0, flat.long(), ones)[:bins]


def bin_lookup(table: Tensor, idx: Tensor) -> Tensor:
    """``table[idx]`` (a per-bin value of each element) for int32 or int64 bins
    ``idx``; on the CPU over parts in threads (see ``torch_threads``)."""
    flat = idx.view(-1)
    if flat.device.type != 'cpu':
        return table.index_select(0, flat).view(idx.shape)
    out = torch.empty(flat.shape, dtype=table.dtype)
    over_parts(lambda start, stop: torch.index_select(
        table, 0, flat[start:stop], out=out[start:stop]), flat.numel())
    return out.view(idx.shape)


def ghmc_bins(logits: Tensor, target: Tensor, weight: Optional[Tensor],
              bins: int) -> Tuple[Tensor, Tensor]:
    """Sigmoid and gradient-norm bin ``g = |sigmoid(x) - y|`` of each element.

    Args:
        logits (Tensor): (N, C) logits, fp32 (or fp64).
        target (Tensor): (N,) labels in [0, C] (C = background) or (N, C) targets.
        weight (Tensor, optional): (N, 1) or (N, C) label weights, 0 = ignored.
        bins (int): Number of bins.

    Returns:
        tuple[Tensor, Tensor]: the sigmoid (N, C) and the int32 bins (N, C),
        ``bins`` for ignored elements.
    """
    p = torch.sigmoid(logits)
    if target.dim() == 1:
        col, pos = label_columns(target, p.shape[1])
        scaled = p * bins  # g = p where y = 0
        p_col = p.gather(1, col)
        scaled.scatter_(1, col, torch.where(pos, 1 - p_col, p_col).mul_(bins))
    else:
        scaled = (p - target).abs_().mul_(bins)
    valid = None if weight is None else weight > 0
    return p, scaled_bin_index(scaled, *bin_limits(bins, valid, p.dtype))


# (sigmoid, bins) of each row chunk by its first row: what GHM-C's weighted BCE
# reuses of the histogram's pass
BinnedChunks = Dict[int, Tuple[Tensor, Tensor]]


def ghmc_histogram(logits: Tensor, target: Tensor, weight: Optional[Tensor],
                   bins: int) -> Tuple[Tensor, BinnedChunks]:
    """Counts of the valid elements per bin, by :func:`ghmc_bins` over row chunks.

    Args: as :func:`ghmc_bins`.

    Returns:
        tuple: int64 counts (bins,), and the (sigmoid, bins) of each row chunk,
        which ``ghmc_torch.ghmc_weighted_bce`` reuses: they are kept until the
        loss has run.
    """
    counts = torch.zeros(bins, dtype=torch.int64, device=logits.device)
    binned = {}
    for rows in row_chunks(logits):
        binned[rows.start] = ghmc_bins(logits[rows], target[rows], rows_of(weight, rows),
                                       bins)
        counts += bin_counts(binned[rows.start][1], bins)
    return counts, binned


def ghmr_histogram(norm: Tensor, valid: Optional[Tensor],
                   bins: int) -> Tuple[Tensor, Tensor]:
    """Counts of GHM-R's gradient norms ``norm`` (fp32, valid where ``valid``)
    per bin, and the bin of each element (``bins`` for ignored ones)."""
    idx = bin_index(norm, bins, valid)
    return bin_counts(idx, bins), idx
