"""Runs a single-threaded CPU op over parts of a tensor in parallel.

``bincount`` and the ``index_select`` of a 1-D table run on one core in ATen,
where the PyTorch implementations' other ops use all of
``torch.get_num_threads()``. Torch ops release the GIL, so Python threads run the
parts side by side; never more parts than the threads torch itself may use.
"""
import concurrent.futures
import functools
import os
from typing import Callable, List

import torch

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
