"""The arguments of the losses, checked and laid out once for both implementations.

Shape and dtype errors are raised at once from Python (no tensor is read).
Value errors (labels out of range, non-finite logits) go through
``torch._assert_async``: raised immediately on the CPU and as a device-side
assert on CUDA, so neither ever synchronises the host with the GPU.

:func:`classification_inputs` gives the sigmoid losses' arguments as
:class:`ClassificationInputs` (target kind, weight layout, compute dtype), which
the Triton kernels (``triton_common.elements``) and the PyTorch implementations
(its ``torch_*`` views) both take; :class:`FocalCoefficients` holds the focal
losses' per-class coefficients, with the views each implementation takes.
"""
import dataclasses
import functools
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from ..functional.asl1 import asl1_root
from ..functional.dtype import compute_dtype
from ..functional.targets import one_hot_labels


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


def check_weight(loss_name: str, weight: Optional[Tensor],
                 shape: Tuple[int, ...]) -> Tensor:
    """Checks (N,) or ``shape`` label weights (finite, >= 0); returns them
    expanded to ``shape`` (ones for None)."""
    expanded = expand_weight(loss_name, weight, shape)
    if weight is not None:
        check_range(loss_name, 'weight', weight, 0.0, meaning=' (0 = ignored)')
    return expanded


@dataclasses.dataclass(eq=False)
class ClassificationInputs:
    """Checked arguments of a sigmoid classification loss (see
    :func:`classification_inputs`).

    Attributes:
        pred (Tensor): (N, C) logits as given (any float dtype).
        target (Tensor): (N,) int64 labels (C = background) or (N, C) float targets.
        weight (Tensor | None): None, (N,) per-row or (N, C) label weights, 0 = ignored.
        dtype (torch.dtype): The compute dtype (fp32; fp64 for fp64 logits).
    """
    pred: Tensor
    target: Tensor
    weight: Optional[Tensor]
    dtype: torch.dtype

    @property
    def target_is_index(self) -> bool:
        return self.target.dim() == 1

    @functools.cached_property
    def torch_target(self) -> Tensor:
        """The target as the PyTorch implementations take it: index labels as
        they are, dense targets in the compute dtype."""
        return self.target if self.target_is_index else self.target.to(self.dtype)

    @functools.cached_property
    def torch_weight(self) -> Optional[Tensor]:
        """(N,) or (N, C) label weights as (N, 1) or (N, C) in the compute dtype,
        broadcasting over the classes in the PyTorch implementations."""
        if self.weight is None:
            return None
        weight = self.weight.to(self.dtype)
        return weight.unsqueeze(1) if weight.dim() == 1 else weight

    def dense(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Logits, targets and label weights of shape (N, C) in the compute dtype."""
        target = self.target
        if self.target_is_index:
            target = one_hot_labels(target, self.pred.shape[1])
        weight = expand_weight('', self.weight, tuple(self.pred.shape))
        return (self.pred.to(self.dtype), target.to(self.dtype),
                weight.to(device=self.pred.device, dtype=self.dtype))


def classification_inputs(loss_name: str, pred: Tensor, target: Tensor,
                          weight: Optional[Tensor]) -> ClassificationInputs:
    """Checks the arguments of a sigmoid classification loss.

    Args:
        loss_name (str): Name used in error messages.
        pred (Tensor): (N, C) logits, any float dtype.
        target (Tensor): (N,) integer labels in [0, C], C meaning background
            (what mmdet's heads pass), or (N, C) float one-hot / soft targets.
        weight (Tensor, optional): (N,), (N, C) or flattened (N * C,) label
            weights, 0 = ignored.

    Returns:
        ClassificationInputs: the arguments, weights as (N,) or (N, C).
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
    return ClassificationInputs(pred, target, weight, compute_dtype(pred))


class FocalCoefficients(NamedTuple):
    """The per-class coefficients of a focal loss, as configured: ``alpha`` (None,
    a scalar or (C,)), ``class_weight`` and ``pos_weight`` (None or (C,)), with
    the form each implementation takes."""
    alpha: Union[None, float, Tensor]
    class_weight: Optional[Tensor]
    pos_weight: Optional[Tensor]

    def check(self, loss_name: str, num_classes: int) -> None:
        for name, value in zip(self._fields, self):
            if isinstance(value, Tensor) and value.numel() != num_classes:
                raise ValueError(f'{loss_name}: `{name}` has {value.numel()} values but '
                                 f'pred has {num_classes} classes.')

    def kernel_vectors(self, num_classes: int, device) -> Tuple[Optional[Tensor], ...]:
        """(C,) fp32 vectors of alpha (None without), class and positive weights
        (ones where not given), on ``device``: what the Triton kernel reads."""
        def vector(value):
            if isinstance(value, Tensor):
                return value.to(device=device, dtype=torch.float32).contiguous()
            return torch.full((num_classes, ), 1.0 if value is None else float(value),
                              dtype=torch.float32, device=device)

        return (None if self.alpha is None else vector(self.alpha),
                vector(self.class_weight), vector(self.pos_weight))

    def column_factors(self, dtype: torch.dtype):
        """Constant factors of the y = 0 and the y = 1 term of each column: scalars
        or (C,) tensors (``(1 - alpha) * w_c`` and ``alpha * w_c * pw_c``), what the
        PyTorch implementation of index labels takes."""
        neg, pos = (1.0, 1.0) if self.alpha is None else (1 - self.alpha, self.alpha)
        if self.class_weight is not None:
            neg, pos = neg * self.class_weight, pos * self.class_weight
        if self.pos_weight is not None:
            pos = pos * self.pos_weight
        return tuple(c.to(dtype) if isinstance(c, Tensor) else c for c in (neg, pos))


class RegressionInputs(NamedTuple):
    """Checked arguments of GHM-R (see :func:`regression_inputs`), as (M, k) rows.

    Attributes:
        pred (Tensor): (M, k) predictions (a view of the given ones, for the
            gradient).
        shape (torch.Size): The shape the predictions were given in.
        rows (Tensor | None): (R,) indices of the rows the loss is computed on,
            or None for all rows.
        pred_rows, target_rows (Tensor): Those rows of the (detached) predictions
            and of the targets, in their own dtype.
        weight_rows (Tensor | None): Those rows of the (M, k) weights.
        diff (Tensor): ``pred_rows - target_rows`` in the compute dtype.
        root (Tensor): ``functional.asl1_root(diff, mu)``.
    """
    pred: Tensor
    shape: torch.Size
    rows: Optional[Tensor]
    pred_rows: Tensor
    target_rows: Tensor
    weight_rows: Optional[Tensor]
    diff: Tensor
    root: Tensor


def rows_with_weight(weight: Tensor) -> Tensor:
    """(R,) indices of the rows of (M, k) weights (checked finite and >= 0) with
    a weight > 0: ``nonzero`` of the row sums, taken as a sum of the k columns
    (a reduction over a short last dimension is several times slower)."""
    return functools.reduce(torch.add, weight.unbind(1)).nonzero().squeeze(1)


def regression_inputs(loss_name: str, pred: Tensor, target: Tensor,
                      weight: Optional[Tensor], mu: float,
                      select_rows: bool) -> RegressionInputs:
    """Checks GHM-R's arguments and lays them out as (M, k) rows.

    Args:
        loss_name (str): Name used in error messages.
        pred (Tensor): (N, 4) or (N, 4k) box deltas, any float dtype, or any
            (..., k) shape.
        target (Tensor): Regression targets of pred's shape.
        weight (Tensor, optional): Weights of pred's shape or of its shape
            without the last dimension; 0 means ignored.
        mu (float): ASL1 parameter.
        select_rows (bool): Compute on the rows with a weight > 0 only (found
            with ``nonzero``, which syncs with a GPU: for CPU tensors).
    """
    if not pred.is_floating_point() or target.shape != pred.shape:
        raise ValueError(
            f'{loss_name}: `pred` must be float and `target` of the same shape; got '
            f'pred {tuple(pred.shape)} {pred.dtype}, target {tuple(target.shape)}.')
    if pred.dim() < 2 or pred.shape[-1] == 0:
        raise ValueError(f'{loss_name}: `pred` must be (N, 4) or (N, 4k) deltas, got '
                         f'shape {tuple(pred.shape)}.')
    check_finite(loss_name, 'pred', pred)
    check_finite(loss_name, 'target', target)
    shape = pred.shape  # the elementwise loss is computed on (M, k)
    pred, target = pred.reshape(-1, shape[-1]), target.reshape(-1, shape[-1])
    if weight is not None:
        if weight.shape == shape:
            weight = weight.reshape(pred.shape)
        elif weight.shape == shape[:-1]:
            weight = weight.reshape(-1)
        weight = check_weight(loss_name, weight, tuple(pred.shape))
    rows = rows_with_weight(weight) if weight is not None and select_rows else None

    def pick(tensor):
        return tensor if rows is None else tensor.index_select(0, rows)

    pred_rows, target_rows = pick(pred.detach()), pick(target)
    weight_rows = None if weight is None else pick(weight)
    dtype = compute_dtype(pred)
    with torch.no_grad():
        diff = pred_rows.to(dtype) - target_rows.to(dtype)
        root = asl1_root(diff, mu)
    return RegressionInputs(pred, shape, rows, pred_rows, target_rows, weight_rows, diff,
                            root)
