"""Equalized focal loss (Li et al., CVPR 2022) for long-tailed one-stage detection."""
from typing import Optional

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from ..functional.equalized_focal import equalized_factors, gradient_ratio
from .rank_sync import RankSyncedStatistics
from .utils import (always_sigmoid, check_reduction, mean_denominator, normalise,
                    reject_unknown_keys, resolve_reduction)


class ClassGradientRatio(RankSyncedStatistics):
    """Per class j, the sums over all training calls of ``|dL/dx|`` of the
    valid positive (``pos_grad``) and negative (``neg_grad``) elements of
    column j, and ``pos_neg = clamp(pos_grad / (neg_grad + 1e-10), 0, 1)``
    (1 before any statistic: the equalized focal loss is then focal).

    A training call adds its sums to ``pending``; ``SyncStatisticsHook`` folds
    them in after every iteration (summed over the ranks with ``sync``), as the
    authors' backward hook does once per iteration: every call of an iteration
    (every FPN level) uses the ratio of the iterations before it. All fp32;
    ``pos_grad``, ``neg_grad`` and ``pos_neg`` are saved in checkpoints.

    Args:
        num_classes (int): Number of classes C (background excluded).
        sync (bool): Sum the iteration's sums over the ranks. Default True.
        loss_name (str): Name of the loss, for error messages.
    """

    folds_per_iteration = True

    def __init__(self, num_classes: int, sync: bool = True,
                 loss_name: str = 'ClassGradientRatio'):
        super().__init__(sync, loss_name)
        self.register_buffer('pos_grad', torch.zeros(num_classes))
        self.register_buffer('neg_grad', torch.zeros(num_classes))
        self.register_buffer('pos_neg', torch.ones(num_classes))
        self.register_buffer('pending', torch.zeros(2, num_classes), persistent=False)

    def add(self, sums: Tensor) -> None:
        """Adds a training call's (2, C) sums (positive, negative) to the pending ones."""
        with torch.no_grad():
            self.pending.add_(sums)

    def statistics_to_sum(self) -> Tensor:
        return self.pending

    def load_sum(self, summed: Tensor, world_size: int) -> None:
        """Folds the iteration's sums (over the ranks) into the totals."""
        self.pos_grad.add_(summed[0])
        self.neg_grad.add_(summed[1])
        self.pos_neg.copy_(gradient_ratio(self.pos_grad, self.neg_grad))
        self.pending.zero_()


@MODELS.register_module()
class EqualizedFocalLoss(nn.Module):
    """Equalized focal loss ``alpha_t * (gamma_j / gamma_b) * (1 - p_t)^gamma_j * BCE``.

    Per class j the focusing factor ``gamma_j = gamma_b + s * (1 - g_j)`` and
    the weighting factor ``gamma_j / gamma_b`` (both detached) grow as the
    class's accumulated ratio ``g_j`` of positive to negative gradient
    magnitude falls: rare classes, whose few positives are outweighed by the
    negatives of every other class's objects, get a larger gamma and weight.

    The gradient magnitudes ``|dL/dx|`` of the loss as returned (``avg_factor``
    and ``loss_weight`` included, as the authors' backward hook sees them; with
    reduction 'none', of its sum) are computed in the loss's own pass, in the
    Triton kernel or the PyTorch implementation: no hook on the head, so it
    works in any head that calls ``loss_cls``, once or once per FPN level.
    Training calls add them up; ``SyncStatisticsHook`` (required in training,
    also on one GPU) folds each iteration's into ``g_j`` (summed over the
    ranks), so the statistics are the authors' whatever the head calls where.

    Args:
        num_classes (int): Number of classes C (the head's ``num_classes``).
        use_sigmoid (bool): Must be True; the head reads it from the config.
        gamma (float): gamma_b > 0, the focusing factor of a balanced class.
            Default 2.0.
        alpha (float | None): Weight of the positive term; None for none.
            Default 0.25.
        scale_factor (float): s >= 0; 0 gives the focal loss. Default 8.0.
        reduction (str): 'none', 'mean' or 'sum'. Default 'mean'.
        loss_weight (float): Multiplier of the loss. Default 1.0.
        impl (str): 'auto' (the Triton kernel on CUDA tensors when triton is
            installed, else PyTorch ops), 'triton' or 'torch'.
        sync_statistics (bool): Sum the gradient statistics over the ranks
            (as the authors do). Default True.
        activated (bool): ``pred`` holds probabilities, not logits (TOOD's head
            passes them); the loss computes on their logits. Default False.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: Optional[float] = 0.25,
                 scale_factor: float = 8.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 impl: str = 'auto',
                 sync_statistics: bool = True,
                 activated: bool = False,
                 **unknown):
        super().__init__()
        reject_unknown_keys(type(self), unknown)
        name = type(self).__name__
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'{name}: num_classes must be the number of classes C '
                             f'(the head\'s num_classes, e.g. 1203 for LVIS v1), got '
                             f'{num_classes!r}: the per-class statistics are buffers of '
                             'that size, saved in checkpoints.')
        if not use_sigmoid:
            raise ValueError(f'{name}: use_sigmoid=False is not supported; the '
                             'equalized focal loss is sigmoid based, set use_sigmoid=True.')
        if not gamma > 0:
            raise ValueError(f'{name}: gamma must be > 0 (the weighting factor is '
                             f'gamma_j / gamma), got {gamma}.')
        if not scale_factor >= 0:
            raise ValueError(f'{name}: scale_factor must be >= 0, got {scale_factor}.')
        if alpha is not None and not 0 <= alpha <= 1:
            raise ValueError(f'{name}: alpha must be in [0, 1] or None, got {alpha}.')
        check_reduction(name, reduction)
        ops.check_impl(name, impl)
        self.num_classes = num_classes
        self.use_sigmoid = True
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.scale_factor = float(scale_factor)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.impl = impl
        self.activated = activated
        self.statistics = ClassGradientRatio(num_classes, sync=sync_statistics, loss_name=name)

    config_uses_sigmoid = staticmethod(always_sigmoid)

    def factors(self):
        """The focusing factors gamma_j (C,) and the focal coefficients (alpha,
        the weighting factors as class weights) of the current ratio g_j. They
        change only when g_j does (a fold, a checkpoint load: its version
        counter moves), so they are kept until then rather than made in every
        call (a call per FPN level)."""
        ratio = self.statistics.pos_neg
        key = (ratio._version, ratio.data_ptr(), ratio.device)
        if getattr(self, '_factors', (None, ))[0] != key:
            gamma_j, weight_j = equalized_factors(ratio, self.gamma, self.scale_factor)
            self._factors = key, (gamma_j, ops.FocalCoefficients(self.alpha, weight_j, None))
        return self._factors[1]

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (N, C) logits, any float dtype.
            target (Tensor | tuple): (N,) int64 labels in [0, C], C =
                background, (N, C) float one-hot / soft targets, or a quality
                target (labels (N,), scores (N,)) as GFL, TOOD and RTMDet pass it
                (the score is the target of the label's column).
            weight (Tensor, optional): (N,), (N, C) or flattened (N * C,) label
                weights; elements with weight 0 are ignored (no loss, no statistic).
            avg_factor (float, optional): 'mean' divides the sum by it (mmdet's
                heads pass the number of positives); without it 'mean' averages
                over the N * C elements.
            reduction_override (str, optional): 'none', 'mean' or 'sum'.

        Returns:
            Tensor: fp32 loss, 0-dim, or (N, C) for 'none'.
        """
        name = type(self).__name__
        reduction = resolve_reduction(name, self.reduction, reduction_override)
        if self.activated:
            pred = ops.probability_logits(name, pred)
        inputs = ops.classification_inputs(name, pred, target, weight)
        if pred.shape[1] != self.num_classes:
            raise ValueError(f'{name}: pred has {pred.shape[1]} classes but num_classes '
                             f'is {self.num_classes}; set the loss\'s num_classes to the '
                             "head's.")
        if self.training:
            self.statistics.check_sync_attached()
        gamma_j, coefficients = self.factors()
        loss, grad_sums = ops.equalized_focal(name, self.impl, inputs, gamma_j, coefficients,
                                              reduction != 'none')
        denominator = mean_denominator(name, reduction, avg_factor, pred.numel())
        if self.training:
            # |dL/dx| of the returned loss: the sums scaled as the loss is
            self.statistics.add(normalise(grad_sums * self.loss_weight, reduction,
                                          denominator))
        return self.loss_weight * normalise(loss, reduction, denominator)
