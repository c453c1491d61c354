"""The gradient-density histogram of GHM-C and GHM-R in PyTorch: the
implementation of ``histogram_triton`` for the CPU and for GPUs whose triton
cannot build the kernels. Both bin by ``functional.bin_index``'s rule; GHM-C
computes it in place, by row chunks (see ``torch_cpu``), and keeps the
sigmoid and bin of every element in the call's inputs for its weighted BCE."""
import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..functional.density import bin_index
from ..functional.targets import label_columns
from .inputs import ClassificationInputs
from .torch_cpu import over_parts, row_chunks, rows_of


def bin_counts(idx: Tensor, bins: int) -> Tensor:
    """Number of elements per bin, ignoring the overflow index ``bins``.

    On the CPU ``bincount`` (over parts in threads, see ``torch_cpu``);
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
    ``idx``; on the CPU over parts in threads (see ``torch_cpu``)."""
    flat = idx.view(-1)
    if flat.device.type != 'cpu':
        return table.index_select(0, flat).view(idx.shape)
    out = torch.empty(flat.shape, dtype=table.dtype)
    over_parts(lambda start, stop: torch.index_select(
        table, 0, flat[start:stop], out=out[start:stop]), flat.numel())
    return out.view(idx.shape)


def bin_index_in_place(scaled: Tensor, valid: Optional[Tensor], bins: int) -> Tensor:
    """``functional.bin_index`` of ``g`` given ``scaled = g * bins``, computed in
    the buffer of an fp32 ``scaled``: its int32 view is the result, so no other
    (N, C) tensor is made. ``scaled`` is clamped into [0, bins - 1] for valid
    elements and [bins, bins] (the overflow index) for ignored ones, then
    truncated (the floor, as it is >= 0). Two one-sided clamps, as a clamp with
    both bounds tensors takes a slow path; an (N, 1) mask handles whole rows
    without a pass over all (N, C) elements for it."""
    if valid is not None:
        ignored = (~valid).to(scaled.dtype)
        scaled.clamp_(min=ignored * bins)
        scaled.clamp_(max=ignored + (bins - 1))
    else:
        scaled.clamp_(max=bins - 1)
    if scaled.dtype != torch.float32:
        return scaled.to(torch.int32)
    return scaled.view(torch.int32).copy_(scaled)


def _ghmc_bins(x: Tensor, target: Tensor, weight: Optional[Tensor], bins: int,
               p: Tensor, scaled: Tensor) -> Tensor:
    """Sigmoid (into ``p``) and bin of ``g = |sigmoid(x) - y|`` of one row chunk,
    the bins computed in ``scaled`` (an int32 view of it for fp32)."""
    torch.sigmoid(x, out=p)
    if target.dim() == 1:
        col, pos = label_columns(target, p.shape[1])
        torch.mul(p, bins, out=scaled)  # g = p where y = 0
        p_col = p.gather(1, col)
        scaled.scatter_(1, col, torch.where(pos, 1 - p_col, p_col).mul_(bins))
    else:
        torch.sub(p, target, out=scaled).abs_().mul_(bins)
    return bin_index_in_place(scaled, None if weight is None else weight > 0, bins)


def ghmc_binned(inputs: ClassificationInputs, bins: int) -> Tuple[Tensor, Tensor]:
    """The sigmoid (N, C) and int32 bin (N, C) of every element of GHM-C (``bins``
    for ignored ones), computed once per call and kept in ``inputs.binned``:
    the histogram counts them and the weighted BCE reuses them."""
    if inputs.binned is None:
        x = inputs.pred.detach().to(inputs.dtype)
        target, weight = inputs.torch_target, inputs.torch_weight
        p, scaled = torch.empty_like(x), torch.empty_like(x)
        idx = None if x.dtype == torch.float32 else torch.empty(
            x.shape, dtype=torch.int32, device=x.device)
        for rows in row_chunks(x):
            chunk_idx = _ghmc_bins(x[rows], target[rows], rows_of(weight, rows), bins,
                                   p[rows], scaled[rows])
            if idx is not None:
                idx[rows] = chunk_idx
        inputs.binned = p, scaled.view(torch.int32) if idx is None else idx
    return inputs.binned


def ghmc_histogram(inputs: ClassificationInputs, bins: int) -> Tensor:
    """int64 counts (bins,) of GHM-C's valid elements per bin."""
    return bin_counts(ghmc_binned(inputs, bins)[1], bins)


def ghmr_histogram(norm: Tensor, valid: Optional[Tensor],
                   bins: int) -> Tuple[Tensor, Tensor]:
    """Counts of GHM-R's gradient norms ``norm`` (fp32, valid where ``valid``)
    per bin, and the bin of each element (``bins`` for ignored ones)."""
    idx = bin_index(norm, bins, valid)
    return bin_counts(idx, bins), idx
