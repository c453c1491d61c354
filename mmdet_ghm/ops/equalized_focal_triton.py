"""Equalized focal loss: its forward kernel (loss and per-class gradient
statistics in one pass), backward kernel, launchers, autograd Function.

The element loss is the focal kernels' (``focal_triton``) with the focusing
factor read per class column: ``w_c * alpha_t * (1 - p_t)^gamma_c * BCE_pw * w``;
the equalized focal loss's weighting factor ``gamma_c / gamma_b`` comes in as the
class weight ``w_c``. Besides the loss, the forward returns what the loss's
gradient statistics need: per class c, the sums over the elements of column c of
``y * |dl/dx|`` and ``(1 - y) * |dl/dx|`` (label weight included, the upstream
gradient not).

The forward tiles the (N, C) elements in 2D so that each program owns a block of
class columns: a program runs down ``ROWS_PER_PROGRAM`` rows of its
``BLOCK_COLS`` columns, a tile of ``BLOCK_ROWS x BLOCK_COLS`` elements at a time,
and writes one partial per column and statistic; torch then sums the partials
over the row groups (a fixed order: deterministic, no atomics). The backward
needs nothing per class and runs over the flat elements like the focal one.
PyTorch implementation: ``equalized_focal_torch``.
"""
import torch
import triton
import triton.language as tl
from torch import Tensor

from .dispatch import build, launch
from .triton_common import (BLOCK, NO_WEIGHT, ROW_WEIGHT, elements, elements_grid,
                            load_elements, load_grad_out, log_sigmoid, placeholders)

# Elements of one forward tile: as many as a focal block.
TILE = BLOCK
# Rows one forward program runs down: its partials cost 2 x 4 bytes per column,
# so the statistics add 8 / ROWS_PER_PROGRAM bytes per element to the forward's
# writes (and as many to torch's sum of them).
ROWS_PER_PROGRAM = 256
# Widths a forward tile may have (powers of two, as tl.arange needs). At least
# 16 columns, a 32-byte sector of fp16 logits per row, unless C fits in 8.
TILE_COLS = (16, 32, 64, 128)
NARROW_TILE_COLS = 8


def tile_shape(num_cols: int):
    """``(BLOCK_ROWS, BLOCK_COLS)`` of the forward tiles for C = ``num_cols``:
    the width of TILE_COLS that pads C least (the widest of those that pad it
    equally; 8 where C fits in it), and
    as many rows as make a TILE. C = 80 gives 64 x 16 tiles (no padding), 1203
    gives 16 x 64 (1216 columns), 7 gives 128 x 8."""
    if num_cols <= NARROW_TILE_COLS:
        block_cols = NARROW_TILE_COLS
    else:
        block_cols = min(TILE_COLS,
                         key=lambda cols: (triton.cdiv(num_cols, cols) * cols, -cols))
    return TILE // block_cols, block_cols


def row_groups(num_rows: int) -> int:
    """Row groups of ROWS_PER_PROGRAM rows, at least one: an empty input still
    has its (zeroed) partials."""
    return triton.cdiv(max(num_rows, 1), ROWS_PER_PROGRAM)


def forward_grid(num_rows: int, num_cols: int, block_cols: int):
    """One program per (row group, column block), the column blocks of a row
    group numbered consecutively: they run side by side and read neighbouring
    parts of the same rows."""
    return (row_groups(num_rows) * triton.cdiv(num_cols, block_cols), )


@triton.jit
def _load_tile(pred_ptr, target_ptr, score_ptr, weight_ptr, rows, cols, num_rows, C,
               TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
               WEIGHT_MODE: tl.constexpr):
    """fp32 pred x, target y and label weight w of the tile ``rows x cols`` and
    its element offsets: ``load_elements`` in 2D. Outside the (N, C) elements
    x = w = 0, so those lanes add 0 to every sum (y may be 1 there: the
    background label C against a padding column C)."""
    row_mask = rows < num_rows
    mask = row_mask[:, None] & (cols < C)[None, :]
    offs = rows[:, None] * C + cols[None, :]
    x = tl.load(pred_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if TARGET_IS_INDEX:
        label = tl.load(target_ptr + rows, mask=row_mask, other=-1)
        y = (label[:, None] == cols[None, :]).to(tl.float32)
        if HAS_SCORE:
            y = y * tl.load(score_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)[:, None]
    else:
        y = tl.load(target_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if WEIGHT_MODE == NO_WEIGHT:
        w = tl.where(mask, 1.0, 0.0)
    elif WEIGHT_MODE == ROW_WEIGHT:
        w = tl.load(weight_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)[:, None]
        w = tl.where(mask, w, 0.0)
    else:
        w = tl.load(weight_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    return x, y, w, offs, mask


@triton.jit
def _loss_and_grad(x, y, w, gamma, alpha, class_weight, pos_weight,
                   USE_ALPHA: tl.constexpr):
    """The element loss and its derivative dl/dx (label weight included, upstream
    gradient not), term for term as the focal kernels compute them, with the
    column's gamma: the modulator in log space,
    ``log(1 - p_t) = logaddexp(log y + logsig(-x), log(1 - y) + logsig(x))``."""
    log_p = log_sigmoid(x)
    log_q = log_sigmoid(-x)
    bce = -(pos_weight * y * log_p + (1.0 - y) * log_q)
    u = tl.log(y) + log_q  # -inf where y = 0: contributes exp(-inf) = 0 below
    v = tl.log(1.0 - y) + log_p
    m = tl.maximum(u, v)
    log_one_minus_pt = m + tl.log(tl.exp(u - m) + tl.exp(v - m))
    modulator = tl.exp(gamma * log_one_minus_pt)
    factor = class_weight
    if USE_ALPHA:
        factor = factor * (alpha * y + (1.0 - alpha) * (1.0 - y))
    loss = factor * modulator * bce * w
    p = tl.sigmoid(x)
    d_bce = (1.0 - y) * p - pos_weight * y * (1.0 - p)
    # d log(1 - p_t) / dx = (1 - 2y) p (1 - p) / (1 - p_t), in log space
    d_log_one_minus_pt = (1.0 - 2.0 * y) * tl.exp(log_p + log_q - log_one_minus_pt)
    d_modulator = gamma * modulator * d_log_one_minus_pt
    grad = factor * w * (d_modulator * bce + modulator * d_bce)
    return loss, grad


@triton.jit
def _equalized_focal_forward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                    gamma_ptr, alpha_ptr, class_weight_ptr, pos_weight_ptr,
                                    out_ptr, stats_ptr, num_rows, C,
                                    TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                                    WEIGHT_MODE: tl.constexpr, USE_ALPHA: tl.constexpr,
                                    REDUCE: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                                    BLOCK_COLS: tl.constexpr, ROW_STEPS: tl.constexpr):
    """Program p = g * column blocks + b: rows g * BLOCK_ROWS * ROW_STEPS onwards
    (row group g), columns b * BLOCK_COLS onwards (column block b). Writes row
    group g's partial statistics of its columns (``stats_ptr``: (row groups, 2,
    C)) and its loss partial (REDUCE: slot p) or its losses."""
    pid = tl.program_id(0)
    num_col_blocks = (C + BLOCK_COLS - 1) // BLOCK_COLS
    row_group = (pid // num_col_blocks).to(tl.int64)
    col_block = pid % num_col_blocks
    cols = col_block * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    col_mask = cols < C
    # each column's coefficients, read once per program
    gamma = tl.load(gamma_ptr + cols, mask=col_mask, other=0.0)[None, :]
    alpha = tl.load(alpha_ptr + cols, mask=col_mask, other=0.0)[None, :]
    class_weight = tl.load(class_weight_ptr + cols, mask=col_mask, other=0.0)[None, :]
    pos_weight = tl.load(pos_weight_ptr + cols, mask=col_mask, other=0.0)[None, :]
    # summed over the rows once, after the loop
    pos_sum = tl.zeros([BLOCK_ROWS, BLOCK_COLS], dtype=tl.float32)
    neg_sum = tl.zeros([BLOCK_ROWS, BLOCK_COLS], dtype=tl.float32)
    loss_sum = tl.zeros([BLOCK_ROWS, BLOCK_COLS], dtype=tl.float32)
    first_row = row_group * (BLOCK_ROWS * ROW_STEPS)
    for step in range(ROW_STEPS):
        rows = first_row + step * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        x, y, w, offs, mask = _load_tile(pred_ptr, target_ptr, score_ptr, weight_ptr, rows,
                                         cols, num_rows, C, TARGET_IS_INDEX, HAS_SCORE,
                                         WEIGHT_MODE)
        loss, grad = _loss_and_grad(x, y, w, gamma, alpha, class_weight, pos_weight,
                                    USE_ALPHA)
        magnitude = tl.abs(grad)  # 0 outside the elements and where w = 0
        pos_sum += y * magnitude
        neg_sum += (1.0 - y) * magnitude
        if REDUCE:
            loss_sum += tl.where(mask, loss, 0.0)
        else:
            tl.store(out_ptr + offs, loss, mask=mask)
    stats_row = stats_ptr + row_group * 2 * C + cols
    tl.store(stats_row, tl.sum(pos_sum, axis=0), mask=col_mask)
    tl.store(stats_row + C, tl.sum(neg_sum, axis=0), mask=col_mask)
    if REDUCE:
        # two one-axis sums: triton 2.1's tl.sum takes no axis=None
        tl.store(out_ptr + pid, tl.sum(tl.sum(loss_sum, axis=1), axis=0))


@triton.jit
def _equalized_focal_backward_kernel(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                     gamma_ptr, alpha_ptr, class_weight_ptr, pos_weight_ptr,
                                     grad_out_ptr, grad_pred_ptr, n, C,
                                     TARGET_IS_INDEX: tl.constexpr, HAS_SCORE: tl.constexpr,
                                     WEIGHT_MODE: tl.constexpr, USE_ALPHA: tl.constexpr,
                                     REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    x, y, w, offs, mask = load_elements(pred_ptr, target_ptr, score_ptr, weight_ptr,
                                        tl.program_id(0), n, C, TARGET_IS_INDEX,
                                        HAS_SCORE, WEIGHT_MODE, BLOCK)
    col = offs % C  # in [0, C) on masked lanes too: the loads below stay in bounds
    gamma = tl.load(gamma_ptr + col)
    alpha = tl.load(alpha_ptr + col)
    class_weight = tl.load(class_weight_ptr + col)
    pos_weight = tl.load(pos_weight_ptr + col)
    _, grad = _loss_and_grad(x, y, w, gamma, alpha, class_weight, pos_weight, USE_ALPHA)
    grad = grad * load_grad_out(grad_out_ptr, offs, mask, REDUCE)
    tl.store(grad_pred_ptr + offs, grad, mask=mask)


def _launch_backward(run, tensors, vectors, grad_out, grad_pred, num_classes, flags):
    pred = tensors[0]
    run(_equalized_focal_backward_kernel, elements_grid(pred), *tensors, *vectors, grad_out,
        grad_pred, pred.numel(), num_classes, BLOCK=BLOCK, **flags)


class EqualizedFocal(torch.autograd.Function):
    """Sum (or elementwise) of ``w_c * alpha_t * (1 - p_t)^gamma_c * BCE_pw *
    label_weight``, and the (2, C) gradient statistics (not differentiable).
    Arguments as :func:`equalized_focal_loss`."""

    @staticmethod
    def forward(ctx, pred, target, score, weight, weight_layout: int, gamma, alpha,
                class_weight, pos_weight, reduce: bool):
        els = elements(pred, target, score, weight, weight_layout)
        tensors = els.pred, els.target, els.score, els.weight
        num_rows, num_classes = els.pred.shape[0], els.num_cols
        # without USE_ALPHA no alpha is used: any fp32 (C,) vector stands in
        vectors = (gamma, class_weight if alpha is None else alpha, class_weight,
                   pos_weight)
        block_rows, block_cols = tile_shape(num_classes)
        grid = forward_grid(num_rows, num_classes, block_cols)
        device = pred.device
        # zeroed, so that no elements (nothing launched) sum to 0
        out = (torch.zeros(grid[0], dtype=torch.float32, device=device)
               if reduce else torch.empty(pred.shape, dtype=torch.float32, device=device))
        stats = torch.zeros(row_groups(num_rows), 2, num_classes, dtype=torch.float32,
                            device=device)
        flags = dict(TARGET_IS_INDEX=els.target_is_index, HAS_SCORE=els.has_score,
                     WEIGHT_MODE=els.weight_mode, USE_ALPHA=alpha is not None,
                     REDUCE=reduce)
        if els.numel:
            launch(_equalized_focal_forward_kernel, grid, *tensors, *vectors, out, stats,
                   num_rows, num_classes, BLOCK_ROWS=block_rows, BLOCK_COLS=block_cols,
                   ROW_STEPS=ROWS_PER_PROGRAM // block_rows, **flags)
            if ctx.needs_input_grad[0]:  # the backward's specialisation, built now
                _launch_backward(build, tensors, vectors, *placeholders(pred), num_classes,
                                 flags)
        ctx.save_for_backward(*tensors, *vectors)
        ctx.flags, ctx.num_classes = flags, num_classes
        stats = stats.sum(0)  # over the row groups, in their order
        ctx.mark_non_differentiable(stats)
        return (out.sum() if reduce else out), stats

    @staticmethod
    def backward(ctx, grad_out, grad_stats):
        pred, target, score, weight, *vectors = ctx.saved_tensors
        grad_pred = torch.empty_like(pred)
        if pred.numel():
            _launch_backward(launch, (pred, target, score, weight), vectors,
                             grad_out.float().contiguous(), grad_pred, ctx.num_classes,
                             ctx.flags)
        return (grad_pred, ) + (None, ) * 9


def equalized_focal_loss(pred: Tensor, target: Tensor, score, weight, weight_layout: int,
                         gamma: Tensor, alpha, class_weight: Tensor, pos_weight: Tensor,
                         reduce: bool):
    """Triton equalized focal loss body: the loss and its gradient statistics.

    Args:
        pred (Tensor): (N, C) logits, fp32 / fp16 / bf16, contiguous or not.
        target (Tensor): (N,) int64 index labels (C = background) or (N, C)
            targets in [0, 1].
        score (Tensor | None): (N,) scores of a quality target (with index labels).
        weight (Tensor | None): (N,) or (N, C) label weights, 0 = ignored.
        weight_layout (int): ``weight``'s, from ``inputs.weight_layout``.
        gamma (Tensor): (C,) fp32 focusing factor of each class column.
        alpha (Tensor | None): (C,) fp32 alpha of each class, or None (no alpha).
        class_weight (Tensor): (C,) fp32 weight of each class column.
        pos_weight (Tensor): (C,) fp32 weight of each class's positive term.
        reduce (bool): Return the fp32 sum instead of the (N, C) fp32 losses.

    Returns:
        tuple[Tensor, Tensor]: the loss (0-dim fp32 sum, or (N, C) fp32),
        differentiable w.r.t. ``pred`` (gradient in pred's dtype); and the
        (2, C) fp32 statistics, not differentiable: row 0 the sum over column
        c's elements of ``y * |dl/dx|``, row 1 of ``(1 - y) * |dl/dx|``, with l
        the element loss (label weight included, upstream gradient not).
    """
    # as the kernels read them (no copy where they already are)
    gamma, alpha, class_weight, pos_weight = (
        None if v is None else v.to(torch.float32).contiguous()
        for v in (gamma, alpha, class_weight, pos_weight))
    return EqualizedFocal.apply(pred, target, score, weight, weight_layout, gamma, alpha,
                                class_weight, pos_weight, reduce)
