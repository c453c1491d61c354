"""The arguments of the losses, checked (``checks``) and laid out once for both
implementations.

:func:`classification_inputs` gives a sigmoid loss's arguments as
:class:`ClassificationInputs`: the target kind (index labels or dense), the
layout of the label weights (``NO_WEIGHT``, ``ROW_WEIGHT`` (N,) or
``DENSE_WEIGHT`` (N, C)), decided here and nowhere else, and the compute dtype.
The Triton kernels (``triton_common.elements``) and the PyTorch implementations
(the ``torch_*`` views) read them. :class:`FocalCoefficients` holds a focal loss's
per-class coefficients; each implementation's view of them is beside it
(``focal_triton.coefficient_vectors``, ``focal_torch.column_factors``).
:func:`regression_inputs` lays GHM-R's arguments out as (M, k) rows.
"""
import dataclasses
import functools
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from ..functional.dtype import compute_dtype
from ..functional.targets import one_hot_labels
from .asl1_torch import asl1_terms
from .checks import (check_finite, check_index_labels, check_probabilities, check_range,
                     check_scores, check_weight)

# the layouts of label weights
NO_WEIGHT, ROW_WEIGHT, DENSE_WEIGHT = 0, 1, 2


def weight_layout(weight: Optional[Tensor]) -> Tuple[Optional[Tensor], int]:
    """Checked (N,) or (N, C) label weights as the implementations take them:
    one weight per row, as mmdet's heads pass them, also where they come as an
    (N, 1) tensor or expanded to (N, C) without a copy (stride 0); else dense."""
    if weight is None:
        return None, NO_WEIGHT
    if weight.dim() == 1:
        return weight, ROW_WEIGHT
    if weight.shape[1] == 1 or weight.stride(1) == 0:
        return weight[:, 0], ROW_WEIGHT
    return weight, DENSE_WEIGHT


def unflatten_weight(weight: Optional[Tensor], shape: Tuple[int, int]):
    """(N * C,) weights, as some mmdet heads pass them (FSAF), to (N, C); the
    contract of mmdet's own sigmoid losses. Other shapes are left to the checks."""
    if (weight is not None and weight.dim() == 1 and shape[1] > 1
            and weight.numel() == shape[0] * shape[1]):
        return weight.reshape(shape)
    return weight


@dataclasses.dataclass(eq=False)
class ClassificationInputs:
    """Checked arguments of a sigmoid classification loss (see
    :func:`classification_inputs`).

    Attributes:
        pred (Tensor): (N, C) logits as given (any float dtype).
        target (Tensor): (N,) int64 labels (C = background) or (N, C) float targets.
        weight (Tensor | None): Label weights in ``weight_layout``: None, (N,)
            per row or (N, C); 0 = ignored.
        weight_layout (int): ``NO_WEIGHT``, ``ROW_WEIGHT`` or ``DENSE_WEIGHT``.
        dtype (torch.dtype): The compute dtype (fp32; fp64 for fp64 logits).
        score (Tensor | None): With (N,) labels, mmdet's quality target: (N,)
            scores in [0, 1], the target of each row's label column (0 in the
            others), as GFL, TOOD and RTMDet pass them; None for 0/1 labels.
        binned (tuple | None): GHM-C's sigmoid and bin of every element where
            its PyTorch histogram ran (``histogram_torch.ghmc_binned``), which
            the weighted BCE of the same call reuses.
    """
    pred: Tensor
    target: Tensor
    weight: Optional[Tensor]
    weight_layout: int
    dtype: torch.dtype
    score: Optional[Tensor] = None
    binned: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def target_is_index(self) -> bool:
        return self.target.dim() == 1

    @property
    def binary_index(self) -> bool:
        """(N,) labels with 0/1 targets, which the PyTorch implementations
        compute without a dense target; quality targets run their dense path."""
        return self.target_is_index and self.score is None

    @property
    def row_weight(self) -> bool:
        return self.weight_layout == ROW_WEIGHT

    @functools.cached_property
    def torch_target(self) -> Tensor:
        """The target as the PyTorch implementations take it: 0/1 index labels as
        they are, other targets (N, C) in the compute dtype."""
        if self.binary_index:
            return self.target
        return self.dense_target()

    def dense_target(self) -> Tensor:
        """The (N, C) target in the compute dtype."""
        if not self.target_is_index:
            return self.target.to(self.dtype)
        target = one_hot_labels(self.target, self.pred.shape[1]).to(self.dtype)
        return target if self.score is None else target * self.score.to(self.dtype)[:, None]

    @functools.cached_property
    def torch_weight(self) -> Optional[Tensor]:
        """The label weights in the compute dtype, broadcasting over the classes:
        (N, 1) per row, else (N, C)."""
        if self.weight is None:
            return None
        weight = self.weight.to(self.dtype)
        return weight.unsqueeze(1) if self.row_weight else weight

    def dense(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Logits, targets and label weights of shape (N, C) in the compute dtype."""
        if self.weight is None:
            weight = torch.ones(()).expand(self.pred.shape)
        else:
            weight = self.torch_weight.expand(self.pred.shape)
        return (self.pred.to(self.dtype), self.dense_target(),
                weight.to(device=self.pred.device, dtype=self.dtype))

    def weighted_by_label(self, label_weight: Tensor) -> 'ClassificationInputs':
        """These inputs with each anchor's label weight times ``label_weight`` of
        its own class ((C + 1,), background last; index labels only)."""
        per_anchor = label_weight[self.target]
        weight = self.weight
        if weight is None:
            weight = per_anchor
        else:
            weight = weight * (per_anchor if weight.dim() == 1 else per_anchor[:, None])
        weight, layout = weight_layout(weight)
        return dataclasses.replace(self, weight=weight, weight_layout=layout)


def classification_inputs(loss_name: str, pred: Tensor, target: Tensor,
                          weight: Optional[Tensor]) -> ClassificationInputs:
    """Checks the arguments of a sigmoid classification loss.

    Args:
        loss_name (str): Name used in error messages.
        pred (Tensor): (N, C) logits, any float dtype.
        target (Tensor | tuple): (N,) integer labels in [0, C], C meaning
            background (what mmdet's heads pass), (N, C) float one-hot / soft
            targets, or mmdet's quality target ``(labels (N,), scores (N,))``:
            the score in [0, 1] is the target of the label's column.
        weight (Tensor, optional): (N,), (N, C) or flattened (N * C,) label
            weights, 0 = ignored.

    Returns:
        ClassificationInputs: the arguments, the weights in their layout.
    """
    if pred.dim() != 2 or not pred.is_floating_point():
        raise ValueError(f'{loss_name}: `pred` must be (N, C) float logits, got '
                         f'shape {tuple(pred.shape)} and dtype {pred.dtype}.')
    num_rows, num_classes = pred.shape
    score = None
    if isinstance(target, (tuple, list)):
        if len(target) != 2 or not all(isinstance(t, Tensor) for t in target):
            raise TypeError(
                f'{loss_name}: a quality `target` must be a pair of tensors (labels (N,), '
                'scores (N,)), as GFL, TOOD and RTMDet pass it; got '
                f'{[type(t).__name__ for t in target]}.')
        target, score = target
        check_scores(loss_name, score, num_rows)
        if target.dim() != 1:
            raise ValueError(f'{loss_name}: the labels of a quality target must be (N,) '
                             f'= ({num_rows},), got {tuple(target.shape)}.')
    elif not isinstance(target, Tensor):
        raise TypeError(
            f'{loss_name}: `target` must be a tensor of (N,) labels or (N, C) targets, or '
            f'a pair (labels, quality scores); got a {type(target).__name__}.')
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
    check_weight(loss_name, weight, (num_rows, num_classes))
    return ClassificationInputs(pred, target, *weight_layout(weight), compute_dtype(pred),
                                score)


def probability_logits(loss_name: str, prob: Tensor) -> Tensor:
    """The logits of probabilities, ``log(p) - log(1 - p)`` in the compute dtype
    and differentiable: what a loss with ``activated=True`` computes on, as
    TOOD's head passes probabilities."""
    check_probabilities(loss_name, prob)
    p = prob.to(compute_dtype(prob))
    return torch.log(p) - torch.log1p(-p)


def softmax_inputs(loss_name: str, pred: Tensor, target: Tensor,
                   weight: Optional[Tensor]) -> ClassificationInputs:
    """Checks the arguments of a softmax classification loss: (N, C + 1) scores
    (background last), (N,) labels in [0, C] and (N,) label weights."""
    num_classes = pred.shape[1] - 1
    check_finite(loss_name, 'pred', pred)
    check_index_labels(loss_name, target, pred.shape[0], num_classes,
                       f'{num_classes} = background')
    check_weight(loss_name, weight, tuple(pred.shape[:1]))
    return ClassificationInputs(pred, target, *weight_layout(weight), compute_dtype(pred))


class FocalCoefficients(NamedTuple):
    """The per-class coefficients of a focal loss, as configured: ``alpha`` (None,
    a scalar or (C,)), ``class_weight`` and ``pos_weight`` (None or (C,))."""
    alpha: Union[None, float, Tensor]
    class_weight: Optional[Tensor]
    pos_weight: Optional[Tensor]

    def check(self, loss_name: str, num_classes: int) -> None:
        for name, value in zip(self._fields, self):
            if isinstance(value, Tensor) and value.numel() != num_classes:
                raise ValueError(f'{loss_name}: `{name}` has {value.numel()} values but '
                                 f'pred has {num_classes} classes.')


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
        root (Tensor): ``sqrt(diff^2 + mu^2)`` (``asl1_torch.asl1_terms``).
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
        check_weight(loss_name, weight, tuple(pred.shape))
        if weight.dim() == 1:  # one weight per row, for each of its k elements
            weight = weight.unsqueeze(-1).expand(pred.shape)
    rows = rows_with_weight(weight) if weight is not None and select_rows else None

    def pick(tensor):
        return tensor if rows is None else tensor.index_select(0, rows)

    pred_rows, target_rows = pick(pred.detach()), pick(target)
    weight_rows = None if weight is None else pick(weight)
    diff, root = asl1_terms(pred_rows, target_rows, compute_dtype(pred), mu)
    return RegressionInputs(pred, shape, rows, pred_rows, target_rows, weight_rows, diff,
                            root)
