"""The checks of the losses' arguments, with errors that say what to do.

Shape and dtype errors are raised at once from Python (no tensor is read).
Value errors (labels out of range, non-finite logits) go through
``torch._assert_async``: raised immediately on the CPU and as a device-side
assert on CUDA, so neither ever synchronises the host with the GPU.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor


def value_range(tensor: Tensor) -> Tuple[Tensor, Tensor]:
    """Smallest and largest element, in one pass where the device has a kernel
    for it. torch < 2.2 has no CPU ``aminmax`` for fp16: there the fp32 copy
    (exact, so the same values) is read instead. CUDA reads the tensor as it is."""
    if tensor.dtype == torch.float16 and tensor.device.type == 'cpu':
        tensor = tensor.float()
    return torch.aminmax(tensor)


def check_finite(loss_name: str, arg: str, tensor: Tensor) -> None:
    # one min/max pass; NaN fails both comparisons
    if tensor.numel() == 0:
        return
    low, high = value_range(tensor)
    torch._assert_async(
        (low > -math.inf) & (high < math.inf),
        f'{loss_name}: `{arg}` contains NaN or Inf; a non-finite {arg} usually '
        'means training has diverged (lower the learning rate or clip gradients).')


def check_range(loss_name: str, arg: str, tensor: Tensor, low: float,
                high: float = math.inf, meaning: str = '') -> None:
    """``low <= tensor <= high`` and finite elementwise, NaN failing (one min/max
    pass)."""
    if tensor.numel() == 0:
        return
    lowest, highest = value_range(tensor)
    bounds = f'finite and >= {low}' if high == math.inf else f'in [{low}, {high}]'
    torch._assert_async(
        (lowest >= low) & (highest <= high) & (highest < math.inf),
        f'{loss_name}: `{arg}` must be {bounds}{meaning}; found a value outside that '
        'range (or NaN or Inf).')


def check_index_labels(loss_name: str, target: Tensor, num_rows: int,
                       max_label: int, background: str) -> None:
    """(N,) integer labels with values in [0, max_label]."""
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(
            f'{loss_name}: (N,) `target` must hold integer class indices '
            f'(torch.long), got {target.dtype}; for one-hot or soft targets pass '
            'a float (N, C) tensor.')
    if target.shape != (num_rows, ):
        raise ValueError(f'{loss_name}: `target` of index labels must have shape '
                         f'(N,) = ({num_rows},), got {tuple(target.shape)}.')
    if target.numel() == 0:
        return
    lowest, highest = torch.aminmax(target)
    torch._assert_async(
        (lowest >= 0) & (highest <= max_label),
        f'{loss_name}: `target` labels must be in [0, {max_label}] '
        f'({background}); found a label outside that range.')


def check_weight(loss_name: str, weight: Optional[Tensor], shape: Tuple[int, ...]) -> None:
    """Label weights of shape (N,) or ``shape`` (N, ...), finite and >= 0; None
    passes."""
    if weight is None:
        return
    if weight.shape not in (tuple(shape), tuple(shape[:1])):
        raise ValueError(f'{loss_name}: `weight` must have shape (N,) = ({shape[0]},) '
                         f'or (N, C) = {tuple(shape)}, got {tuple(weight.shape)}.')
    check_range(loss_name, 'weight', weight, 0.0, meaning=' (0 = ignored)')


def check_scores(loss_name: str, score: Tensor, num_rows: int) -> None:
    """The (N,) float scores of a quality target, in [0, 1]."""
    if not score.is_floating_point() or score.shape != (num_rows, ):
        raise ValueError(f'{loss_name}: the scores of a quality target must be (N,) = '
                         f'({num_rows},) floats, got {tuple(score.shape)} {score.dtype}.')
    check_range(loss_name, 'target scores', score, 0.0, 1.0, ' (quality targets)')


def check_probabilities(loss_name: str, prob: Tensor) -> None:
    """Probabilities strictly inside (0, 1): 0 and 1 have no logit."""
    if prob.numel() == 0:
        return
    lowest, highest = value_range(prob)
    torch._assert_async(
        (lowest > 0) & (highest < 1),
        f'{loss_name}: with activated=True `pred` must hold probabilities in (0, 1); '
        'found one of exactly 0 or 1 (a saturated sigmoid), which has no logit, or NaN.')
