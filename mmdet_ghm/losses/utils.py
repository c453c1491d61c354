"""Argument checks and target expansion shared by the losses.

Shape and dtype errors are raised at once from Python (no tensor is read).
Value errors (labels out of range, non-finite logits) go through
``torch._assert_async``: raised immediately on the CPU and as a device-side
assert on CUDA, so neither ever synchronises the host with the GPU.
"""
import inspect
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..functional import one_hot_labels

REDUCTIONS = ('none', 'mean', 'sum')


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """fp32 for half/bfloat16/fp32 inputs, fp64 for fp64 (used by gradcheck)."""
    return torch.promote_types(tensor.dtype, torch.float32)


def reject_unknown_keys(loss: type, unknown: dict) -> None:
    """A clear error for constructor keys the loss does not take, naming the
    usual cause: a loss dict merged into the one of an inherited base config."""
    if not unknown:
        return
    taken = [name for name in inspect.signature(loss.__init__).parameters
             if name not in ('self', 'unknown')]
    raise TypeError(
        f'{loss.__name__} got keys it does not take: {", ".join(sorted(unknown))}. '
        "In a config that inherits a model (e.g. mmdet::retinanet/...), a loss dict "
        "is merged into the base's loss (FocalLoss brings gamma and alpha): add "
        f"_delete_=True to the dict to replace it, e.g. loss_cls=dict(_delete_=True, "
        f"type='{loss.__name__}', ...). {loss.__name__} takes: {', '.join(taken)}.")


def check_reduction(loss_name: str, reduction: Optional[str]) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss_name}: reduction must be one of {REDUCTIONS}, "
                         f"got {reduction!r}.")


def resolve_reduction(loss_name: str, reduction: str,
                      reduction_override: Optional[str]) -> str:
    if reduction_override is None:
        return reduction
    check_reduction(loss_name, reduction_override)
    return reduction_override


def normalise(total: Tensor, reduction: str, denominator) -> Tensor:
    """The last step of a reduction: 'none' and 'sum' return ``total`` (the
    elementwise losses or their sum), 'mean' divides it by ``denominator``."""
    return total / denominator if reduction == 'mean' else total


def mean_denominator(loss_name: str, reduction: str, avg_factor, numel: int):
    """mmdet's 'mean': over ``avg_factor`` (+ eps, as ``weight_reduce_loss``) when
    given, else over the number of elements (at least 1, so empty input gives 0).
    Like ``weight_reduce_loss``, ``avg_factor`` with 'sum' is an error."""
    if avg_factor is not None and reduction == 'sum':
        raise ValueError(f"{loss_name}: avg_factor can not be used with reduction='sum' "
                         "(it divides a 'mean'); drop avg_factor or use 'mean'.")
    if avg_factor is None:
        return max(numel, 1)
    return avg_factor + torch.finfo(torch.float32).eps


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


def expand_weight(loss_name: str, weight: Optional[Tensor],
                  shape: Tuple[int, int]) -> Tensor:
    """Label weights (N,), (N, C) or None to (N, C); 0 means ignored."""
    if weight is None:
        return torch.ones(()).expand(shape)
    if weight.shape == shape:
        return weight
    if weight.shape == tuple(shape[:1]):
        return weight.unsqueeze(-1).expand(shape)
    raise ValueError(f'{loss_name}: `weight` must have shape (N,) = ({shape[0]},) '
                     f'or (N, C) = {tuple(shape)}, got {tuple(weight.shape)}.')


def unflatten_weight(weight: Optional[Tensor], shape: Tuple[int, int]):
    """(N * C,) weights, as some mmdet heads pass them (FSAF), to (N, C); the
    contract of mmdet's own sigmoid losses. Other shapes are left to the checks."""
    if (weight is not None and weight.dim() == 1 and shape[1] > 1
            and weight.numel() == shape[0] * shape[1]):
        return weight.reshape(shape)
    return weight


def check_classification_inputs(loss_name: str, pred: Tensor, target: Tensor,
                                weight: Optional[Tensor]) -> Optional[Tensor]:
    """Checks the arguments of a sigmoid classification loss.

    Args:
        loss_name (str): Name used in error messages.
        pred (Tensor): (N, C) logits, any float dtype.
        target (Tensor): (N,) integer labels in [0, C], C meaning background
            (what mmdet's heads pass), or (N, C) float one-hot / soft targets.
        weight (Tensor, optional): (N,), (N, C) or flattened (N * C,) label
            weights, 0 = ignored.

    Returns:
        Tensor | None: the weights as (N,) or (N, C).
    """
    if pred.dim() != 2 or not pred.is_floating_point():
        raise ValueError(f'{loss_name}: `pred` must be (N, C) float logits, got '
                         f'shape {tuple(pred.shape)} and dtype {pred.dtype}.')
    if not isinstance(target, Tensor):
        raise TypeError(
            f'{loss_name}: `target` must be a tensor of (N,) labels or (N, C) targets, '
            f'got a {type(target).__name__}. Heads that pass (labels, quality scores), '
            'as GFL, TOOD and RTMDet do for QualityFocalLoss, need a quality-aware loss; '
            f'{loss_name} is not one.')
    num_rows, num_classes = pred.shape
    check_finite(loss_name, 'pred', pred)
    if target.dim() == 1:
        check_index_labels(loss_name, target, num_rows, num_classes,
                           f'{num_classes} = background')
    elif target.shape == pred.shape:
        if not target.is_floating_point():
            raise TypeError(f'{loss_name}: (N, C) `target` must be float one-hot or '
                            f'soft targets, got {target.dtype}; pass integer '
                            'labels as an (N,) tensor.')
        check_range(loss_name, 'target', target, 0.0, 1.0, ' (one-hot or soft targets)')
    else:
        raise ValueError(
            f'{loss_name}: `target` must be (N,) = ({num_rows},) index labels or '
            f'(N, C) = {tuple(pred.shape)} targets, got {tuple(target.shape)}; '
            'with use_sigmoid=True the head predicts C scores per anchor.')
    weight = unflatten_weight(weight, tuple(pred.shape))
    if weight is not None:
        check_weight(loss_name, weight, (num_rows, num_classes))
    return weight


def weight_by_label(target: Tensor, weight: Optional[Tensor],
                    label_weight: Tensor) -> Tensor:
    """Checked label weights (N,) / (N, C) or None times ``label_weight[target]``:
    a weight per anchor from its checked (N,) index label (``label_weight`` has
    C + 1 values, background last)."""
    per_anchor = label_weight[target]
    if weight is None:
        return per_anchor
    return weight * (per_anchor if weight.dim() == 1 else per_anchor[:, None])


def check_weight(loss_name: str, weight: Tensor, shape: Tuple[int, ...]) -> Tensor:
    """Checks (N,) or ``shape`` label weights (finite, >= 0); returns them
    expanded to ``shape``."""
    expanded = expand_weight(loss_name, weight, shape)
    check_range(loss_name, 'weight', weight, 0.0, meaning=' (0 = ignored)')
    return expanded


def broadcast_weight(weight: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """(N,) or (N, C) label weights as (N, 1) or (N, C) in ``dtype``, for the
    twins' broadcasting over the classes."""
    if weight is None:
        return None
    weight = weight.to(dtype)
    return weight.unsqueeze(1) if weight.dim() == 1 else weight


def dense_classification_inputs(pred: Tensor, target: Tensor,
                                weight: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Checked arguments (see :func:`check_classification_inputs`) to dense form.

    Returns:
        tuple[Tensor, Tensor, Tensor]: logits, targets and label weights of
        shape (N, C) in fp32 (fp64 for fp64 logits).
    """
    dtype = compute_dtype(pred)
    if target.dim() == 1:
        target = one_hot_labels(target, pred.shape[1])
    weight = expand_weight('', weight, tuple(pred.shape))
    return (pred.to(dtype), target.to(dtype),
            weight.to(device=pred.device, dtype=dtype))
