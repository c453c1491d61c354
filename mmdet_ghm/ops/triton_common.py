"""What every Triton kernel shares: argument layout, per-element loads, the bin rule.

Kernels see the (N, C) elements as a flat array. Targets are either (N,) index
labels (C = background, never materialised as one-hot) or dense (N, C); label
weights are absent, per row (N,) or dense (N, C): ``inputs.weight_layout``'s
layouts, told to the kernels as ``WEIGHT_MODE``.
"""
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import inputs

BLOCK = 1024
# WEIGHT_MODE: the label weights' layout
NO_WEIGHT = tl.constexpr(inputs.NO_WEIGHT)
ROW_WEIGHT = tl.constexpr(inputs.ROW_WEIGHT)
DENSE_WEIGHT = tl.constexpr(inputs.DENSE_WEIGHT)


class Elements(NamedTuple):
    pred: Tensor
    target: Tensor
    score: Tensor
    weight: Tensor
    target_is_index: bool
    has_score: bool
    weight_mode: int
    num_cols: int

    @property
    def numel(self) -> int:
        return self.pred.numel()

    def grid(self):
        return elements_grid(self.pred)


def placeholders(pred: Tensor):
    """Empty stand-ins for a backward kernel's ``grad_out`` (fp32) and
    ``grad_pred`` (pred's dtype) when it is built before the backward: a
    specialisation depends on the pointers' dtypes and 16-byte alignment only,
    and these, like the fresh tensors of the backward, are aligned."""
    return (torch.empty(0, dtype=torch.float32, device=pred.device),
            torch.empty(0, dtype=pred.dtype, device=pred.device))


def elements_grid(pred: Tensor):
    """The grid of a kernel over the elements of ``pred``: one block per BLOCK
    elements, at least one (so that ``block_partials`` has a slot)."""
    return (triton.cdiv(max(pred.numel(), 1), BLOCK), )


def elements(pred: Tensor, target: Tensor, score, weight, weight_layout: int) -> Elements:
    """Lays out checked (N, C) arguments for the kernels: the (N,) scores of a
    quality target or None, the label weights as ``inputs.weight_layout`` gives
    them; copies nothing already contiguous."""
    # without scores or weights pred stands in: a valid pointer that is never read
    has_score = score is not None
    score = pred if score is None else score
    weight = pred if weight is None else weight
    return Elements(pred.contiguous(), target.contiguous(), score.contiguous(),
                    weight.contiguous(), target.dim() == 1, has_score, weight_layout,
                    pred.shape[-1])


@triton.jit
def load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr, pid, n, C,
                  TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                  WEIGHT_MODE: tl.constexpr, BLOCK: tl.constexpr):
    """fp32 pred x, target y and label weight w of one block, and their offsets.
    With index labels y is 1 at the label's column (the row's score with
    HAS_SCORE, a quality target) and 0 elsewhere."""
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    row = offs // C
    x = tl.load(pred_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if TARGET_IS_INDEX:
        label = tl.load(target_ptr + row, mask=mask, other=-1)
        y = (label == offs % C).to(tl.float32)
        if HAS_SCORE:
            y = y * tl.load(score_ptr + row, mask=mask, other=0.0).to(tl.float32)
    else:
        y = tl.load(target_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if WEIGHT_MODE == NO_WEIGHT:
        w = tl.where(mask, 1.0, 0.0)
    elif WEIGHT_MODE == ROW_WEIGHT:
        w = tl.load(weight_ptr + row, mask=mask, other=0.0).to(tl.float32)
    else:
        w = tl.load(weight_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    return x, y, w, offs, mask


@triton.jit
def bin_of(g, BINS: tl.constexpr):
    """The bin rule, ``min(floor(g * BINS), BINS - 1)`` for g in [0, 1]: Triton's
    copy of ``functional.bin_index`` (tests/test_ops/test_kernels.py holds them
    equal). The clamp below 0 only keeps a NaN g (caught by the input checks) in
    range."""
    return tl.minimum(tl.maximum((g * BINS).to(tl.int32), 0), BINS - 1)


@triton.jit
def one_hot_histogram(idx, HIST: tl.constexpr):
    """How often each of 0 .. HIST-1 occurs in the block's int32 ``idx``, as a
    one-hot compare-and-sum: what triton 2.1 to 2.3 build (no ``tl.histogram``)."""
    return tl.sum((idx[:, None] == tl.arange(0, HIST)[None, :]).to(tl.int32), axis=0)


@triton.jit
def _tl_histogram(idx, HIST: tl.constexpr):
    return tl.histogram(idx, HIST)


# The block histogram the kernels call, chosen here and not by a constexpr branch:
# triton 2.x resolves every ``tl.`` name of the functions a kernel calls, even in
# a branch switched off, and never sees _tl_histogram's. Where triton has it,
# tl.histogram is the cheaper of the two (fewer instructions per element).
block_histogram = _tl_histogram if hasattr(tl, 'histogram') else one_hot_histogram


@triton.jit
def log_sigmoid(x):
    """log(sigmoid(x)), finite for any finite x."""
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def store_loss(out_ptr, pid, offs, mask, loss, REDUCE: tl.constexpr):
    """The block's partial sum (REDUCE) or the elementwise losses."""
    if REDUCE:
        tl.store(out_ptr + pid, tl.sum(tl.where(mask, loss, 0.0), axis=0))
    else:
        tl.store(out_ptr + offs, loss, mask=mask)


@triton.jit
def load_grad_out(grad_out_ptr, offs, mask, REDUCE: tl.constexpr):
    """The upstream gradient: one scalar for a sum, else elementwise."""
    if REDUCE:
        grad_out = tl.load(grad_out_ptr)
    else:
        grad_out = tl.load(grad_out_ptr + offs, mask=mask, other=0.0)
    return grad_out


def block_partials(els: Elements) -> Tensor:
    """One fp32 slot per block: summed in a fixed order, so sums are deterministic.
    Zeroed, so the sum of no elements (no block launched) is 0."""
    return torch.zeros(els.grid()[0], dtype=torch.float32, device=els.pred.device)
