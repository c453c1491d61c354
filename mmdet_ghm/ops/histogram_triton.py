"""Fused gradient-density histogram of GHM-C and GHM-R (Triton kernel and launcher).

One pass over the elements: gradient norm, bin, a block-local histogram
(``triton_common.block_histogram``: ``tl.histogram``, or its one-hot form on triton
2.x), then one atomic add per bin into the global counts. Nothing leaves the
device. Ignored elements go to an extra bin that is never added, so the kernel
needs no ``mask=`` of ``tl.histogram`` (absent in triton 3.1 and 3.3).
PyTorch implementation: ``histogram_torch``.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .dispatch import launch
from .triton_common import BLOCK, bin_of, block_histogram, elements, load_elements

# NORM: the gradient norm binned
GHMC_NORM = tl.constexpr(0)  # |sigmoid(x) - y|
GHMR_NORM = tl.constexpr(1)  # ASL1's |d| / sqrt(d^2 + mu^2)


@triton.jit
def gradient_norm(x, y, mu, NORM: tl.constexpr):
    """GHM-C: |sigmoid(x) - y| of logits x; GHM-R: ASL1's |d| / sqrt(d^2 + mu^2)
    of d = pred - target, with x = pred and y = target."""
    if NORM == GHMC_NORM:
        g = tl.abs(tl.sigmoid(x) - y)
    else:
        d = x - y
        g = tl.abs(d) / tl.sqrt(d * d + mu * mu)
    return g


@triton.jit
def _histogram_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr, counts_ptr,
                      index_ptr, n, C, mu, NORM: tl.constexpr,
                      TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                      WEIGHT_MODE: tl.constexpr, BINS: tl.constexpr, HIST: tl.constexpr,
                      WRITE_INDEX: tl.constexpr, BLOCK: tl.constexpr):
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                        tl.program_id(0), n, C, TARGET_IS_INDEX, HAS_SCORE,
                                        WEIGHT_MODE, BLOCK)
    idx = tl.where(mask & (w > 0), bin_of(gradient_norm(x, y, mu, NORM), BINS), BINS)
    hist = block_histogram(idx, HIST)
    bins = tl.arange(0, HIST)
    tl.atomic_add(counts_ptr + bins, hist, mask=bins < BINS)
    if WRITE_INDEX:
        tl.store(index_ptr + offs, idx.to(tl.int64), mask=mask)


def gradient_histogram(pred: Tensor, target: Tensor, score, weight, weight_layout: int,
                       bins: int, norm: int, mu: float = 0.0, return_index: bool = False):
    """Counts of valid elements per gradient-norm bin.

    Args:
        pred (Tensor): (N, C) logits (``GHMC_NORM``) or box deltas (``GHMR_NORM``).
        target (Tensor): (N,) index labels or (N, C) targets.
        score (Tensor | None): (N,) scores of a quality target (with index labels).
        weight (Tensor | None): (N,) or (N, C) label weights, 0 = ignored.
        weight_layout (int): ``weight``'s, from ``inputs.weight_layout``.
        bins (int): Number of bins of [0, 1].
        norm (tl.constexpr): ``GHMC_NORM`` or ``GHMR_NORM``.
        mu (float): ASL1 parameter of GHM-R.
        return_index (bool): Also return each element's bin, as
            ``histogram_torch`` does (``bins`` for ignored elements).

    Returns:
        Tensor | tuple[Tensor, Tensor]: int64 counts (bins,), and with
        ``return_index`` the int64 bin of each element, of pred's shape.
    """
    els = elements(pred, target, score, weight, weight_layout)
    counts = torch.zeros(bins, dtype=torch.int32, device=pred.device)
    # without return_index the store is compiled out: counts is a stand-in pointer
    index = (torch.empty(pred.shape, dtype=torch.int64, device=pred.device)
             if return_index else counts)
    if els.numel:
        # HIST holds the extra bin of the ignored elements
        launch(_histogram_kernel, els.grid(), els.pred, els.target, els.score, els.weight,
               counts, index, els.numel, els.num_cols, mu, NORM=norm.value,
               TARGET_IS_INDEX=els.target_is_index, HAS_SCORE=els.has_score,
               WEIGHT_MODE=els.weight_mode, BINS=bins, HIST=triton.next_power_of_2(bins + 1),
               WRITE_INDEX=return_index, BLOCK=BLOCK)
    return (counts.long(), index) if return_index else counts.long()
