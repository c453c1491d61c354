"""Gradient density of GHM (Li, Liu, Wang, AAAI 2019): bins, counts, weights.

Pure tensor math, no state. All statistics are fp32 (counts int64) whatever the
input dtype, and nothing here synchronises the host with the device.
"""
import torch
from torch import Tensor


def bin_edges(bins: int, last_edge: float, device=None) -> Tensor:
    """Edges ``i / bins`` for ``i = 0..bins`` with the last one replaced.

    Args:
        bins (int): Number of bins splitting [0, 1] evenly.
        last_edge (float): Upper edge of the last bin (GHM-C: ``1 + 1e-6`` so
            that g = 1 is counted, GHM-R: ``1e3``).

    Returns:
        Tensor: fp32 edges of shape (bins + 1,).
    """
    edges = torch.arange(bins + 1, dtype=torch.float32, device=device) / bins
    edges[-1] = last_edge
    return edges


def bin_index(g: Tensor, valid: Tensor, edges: Tensor) -> Tensor:
    """Bin of each element: ``i`` with ``edges[i] <= g < edges[i + 1]``.

    Args:
        g (Tensor): Gradient norms, any shape, fp32.
        valid (Tensor): Bool mask of g's shape; False for ignored elements.
        edges (Tensor): fp32 edges of shape (bins + 1,), see :func:`bin_edges`.

    Returns:
        Tensor: int64 indices of g's shape; ignored elements (and any g outside
        the edges) get the overflow index ``bins``, which no weight is given to.
    """
    bins = edges.numel() - 1
    idx = torch.bucketize(g, edges, right=True) - 1
    inside = valid & (idx >= 0) & (idx < bins)
    return torch.where(inside, idx, torch.full_like(idx, bins))


def bin_counts(idx: Tensor, bins: int) -> Tensor:
    """Number of elements per bin, ignoring the overflow index ``bins``.

    ``scatter_add_`` rather than ``bincount``: on CUDA bincount reads the maximum
    back to the host to size its output.

    Returns:
        Tensor: int64 counts of shape (bins,).
    """
    flat = idx.reshape(-1)
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=idx.device)
    counts.scatter_add_(0, flat, torch.ones(1, dtype=torch.int64,
                                            device=idx.device).expand_as(flat))
    return counts[:bins]


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
