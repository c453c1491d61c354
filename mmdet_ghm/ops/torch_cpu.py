"""What makes the PyTorch implementations fast on the CPU, in one place: row
chunks for their hand-written autograd Functions, and threads for the ops that
ATen runs on one core.

Row chunks. On the CPU, working on blocks of about a million elements keeps every
temporary small: the allocator reuses the blocks instead of asking the system for
(and faulting in) fresh pages for each N x C temporary. What is allocated whole:
the gradient, the elementwise losses for reduction 'none', and, for GHM-C, the
sigmoid and bin of every element, which the histogram computes and the loss
reuses (``histogram_torch.ghmc_binned``). On a GPU (the PyTorch implementations
run there for a triton too old for the kernels) every op is a kernel launch, and
the caching allocator reuses blocks of any size. There chunks only bound the
memory of the temporaries, and are larger so that each pass stays well above its
launch cost.

Threads. ``bincount`` and the ``index_select`` of a 1-D table run on one core in
ATen, where the other ops use all of ``torch.get_num_threads()``. Torch ops
release the GIL, so Python threads run the parts side by side
(:func:`over_parts`); never more parts than the threads torch itself may use.
"""
import concurrent.futures
import functools
import os
from typing import Callable, List, Optional

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 20
GPU_CHUNK_ELEMENTS = 1 << 24


def row_chunks(tensor: Tensor) -> List[slice]:
    """Slices of consecutive rows of about ``CHUNK_ELEMENTS`` elements each on
    the CPU, ``GPU_CHUNK_ELEMENTS`` elsewhere."""
    size = CHUNK_ELEMENTS if tensor.device.type == 'cpu' else GPU_CHUNK_ELEMENTS
    rows = max(1, size // max(tensor.shape[1], 1))
    return [slice(start, start + rows) for start in range(0, tensor.shape[0], rows)]


def rows_of(tensor: Optional[Tensor], rows: slice) -> Optional[Tensor]:
    """``tensor[rows]``; None stays None."""
    return None if tensor is None else tensor[rows]


def forward_by_rows(ctx, logits: Tensor, x: Tensor, row_weight: Optional[Tensor],
                    reduce: bool, loss_rows: Callable) -> Tensor:
    """The forward of a loss whose gradient is computed with it, chunk by chunk.

    ``loss_rows(rows, need_grad, losses, grad)`` computes the chunk ``rows`` of
    ``x`` and returns ``(value, gradient)``: the value is the sum of the
    elementwise losses, or, when not ``reduce``, the losses themselves; the
    gradient (None without ``need_grad``) leaves out the row weights. Given
    ``losses`` and ``grad`` (views of the whole results), it writes into them;
    given None, it returns buffers of its own, which for a single chunk are
    the whole results (no copy). The gradient and the (N, 1) ``row_weight``
    are saved for :func:`backward_by_rows`.

    Returns:
        Tensor: the 0-dim sum, or the (N, C) losses when not ``reduce``.
    """
    need_grad = ctx.needs_input_grad[0]
    chunks = row_chunks(x)
    if len(chunks) == 1:
        value, grad = loss_rows(chunks[0], need_grad, None, None)
    else:
        grad = torch.empty_like(x) if need_grad else None
        losses = None if reduce else torch.empty_like(x)
        value = x.new_zeros(()) if reduce else losses
        for rows in chunks:
            chunk_value, _ = loss_rows(rows, need_grad, rows_of(losses, rows),
                                       rows_of(grad, rows))
            if reduce:
                value += chunk_value
    if need_grad:
        ctx.save_for_backward(grad, row_weight)
        ctx.logits_dtype = logits.dtype
    return value


def backward_by_rows(ctx, grad_out: Tensor) -> Tensor:
    """The saved gradient times ``grad_out`` and the row weights, in the dtype
    of the logits."""
    grad, row_weight = ctx.saved_tensors
    scale = grad_out if row_weight is None else row_weight * grad_out
    return (grad * scale).to(ctx.logits_dtype)


# below this many elements per part a thread hand-off costs more than it saves
MIN_PART = 1 << 18


@functools.lru_cache(maxsize=None)
def _workers(count: int, pid: int) -> concurrent.futures.ThreadPoolExecutor:
    # by process: a forked child has none of its parent's threads
    return concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix='mmdet_ghm')


def over_parts(fn: Callable, size: int) -> List:
    """``[fn(start, stop), ...]`` over consecutive ranges splitting [0, size):
    one range without spare threads or below ``2 * MIN_PART``, else one per
    thread (at most size // MIN_PART), all but the first in worker threads."""
    parts = max(1, min(torch.get_num_threads(), size // MIN_PART))
    bounds = [size * k // parts for k in range(parts + 1)]
    # grad and inference mode are thread-local: the workers take the caller's
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def in_caller_mode(start, stop):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(start, stop)

    futures = [_workers(parts - 1, os.getpid()).submit(in_caller_mode, start, stop)
               for start, stop in zip(bounds[1:-1], bounds[2:])] if parts > 1 else []
    return [fn(bounds[0], bounds[1])] + [future.result() for future in futures]
