"""Class-balanced loss from the effective number of samples (Cui et al., CVPR 2019)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from ..functional import check_beta, effective_number_weights
from .sigmoid_focal import register_per_class
from .utils import check_reduction, reduce_loss, reject_unknown_keys, resolve_reduction

LOSS_TYPES = ('focal', 'sigmoid', 'softmax')
WEIGHTINGS = ('class', 'sample')


@MODELS.register_module()
class ClassBalancedFocalLoss(nn.Module):
    """Class-balanced focal, sigmoid or softmax cross-entropy.

    Class c gets ``w_c = (1 - beta) / (1 - beta^n_c)``, normalised so that the
    C weights sum to C. For the sigmoid variants, ``weighting='class'``
    (default) gives column c of the logits the weight w_c: the formula of the
    paper (n_c counts class c), and the one form a sigmoid head can apply to its
    background anchors, whose C columns are all negatives. ``weighting='sample'``
    is the authors' code and its PyTorch ports: every column of an anchor gets
    w_y of the anchor's own class y, and a background anchor gets 1.0 (the mean
    class weight, as for softmax). For ``loss_type='softmax'`` the
    head predicts C + 1 scores (``use_sigmoid=False``, background last); an
    anchor of class c gets w_c and a background anchor gets 1.0, the mean
    foreground weight, so re-weighting shifts loss between the object classes
    and leaves the background's share unchanged.

    Args:
        class_counts (list[int], optional): Training samples per class. A class
            with 0 samples is an error (its weight would be infinite). When
            None, :meth:`set_class_counts` must be called before the first
            forward (``ClassCountsHook`` does it from the training set).
        beta (float): In [0, 1); 0 = no re-weighting. Default 0.999.
        gamma (float, optional): Focusing parameter of ``'focal'``; default 0.5.
            ``'sigmoid'`` is the focal loss with gamma 0 and ``'softmax'`` has
            no modulator, so both reject another gamma.
        loss_type (str): ``'focal'`` (default), ``'sigmoid'`` or ``'softmax'``.
        weighting (str): ``'class'`` (default): column c gets w_c; ``'sample'``:
            every column of an anchor of class y gets w_y, background 1.0 (needs
            (N,) index labels). Softmax applies w_y per anchor either way.
        alpha (float | list[float] | None): Optional focal alpha for the
            sigmoid variants. Default None, as in the paper.
        use_sigmoid (bool): True for the sigmoid variants, False for
            ``'softmax'``; the head reads it from the config.
        reduction (str): 'none', 'mean' or 'sum'. Default 'mean'.
        loss_weight (float): Multiplier of the loss. Default 1.0.
        impl (str): For the sigmoid variants: 'auto' (a fused Triton kernel on
            CUDA tensors when triton is installed, else PyTorch ops), 'triton'
            or 'torch'. 'softmax' always uses ``F.cross_entropy``.
        activated (bool): ``pred`` holds probabilities, not logits (TOOD's head
            passes them, with QualityFocalLoss(activated=True)); the loss computes
            on their logits. Default False.
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 beta: float = 0.999,
                 gamma: Optional[float] = None,
                 loss_type: str = 'focal',
                 weighting: str = 'class',
                 alpha=None,
                 use_sigmoid: Optional[bool] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 impl: str = 'auto',
                 activated: bool = False,
                 **unknown):
        super().__init__()
        reject_unknown_keys(type(self), unknown)
        name = type(self).__name__
        ops.check_impl(name, impl)
        self.impl = impl
        self.activated = activated
        if loss_type not in LOSS_TYPES:
            raise ValueError(f'{name}: loss_type must be one of {LOSS_TYPES}, got '
                             f'{loss_type!r}.')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'{name}: weighting must be one of {WEIGHTINGS}, got '
                             f"{weighting!r}: 'class' weighs class column c by w_c, "
                             "'sample' every column of an anchor by its own class's.")
        expected_sigmoid = loss_type != 'softmax'
        if use_sigmoid is not None and use_sigmoid != expected_sigmoid:
            raise ValueError(
                f"{name}: loss_type={loss_type!r} needs use_sigmoid="
                f"{expected_sigmoid} (the head predicts "
                f"{'C' if expected_sigmoid else 'C + 1'} scores per anchor).")
        if loss_type == 'focal':
            gamma = 0.5 if gamma is None else gamma
            if gamma < 0:
                raise ValueError(f'{name}: gamma must be >= 0, got {gamma}.')
        elif gamma not in (None, 0):
            raise ValueError(f"{name}: loss_type={loss_type!r} has no focal term; "
                             f"use loss_type='focal' for gamma={gamma}.")
        if loss_type == 'softmax' and activated:
            raise ValueError(f"{name}: activated=True applies to the sigmoid variants only.")
        if loss_type == 'softmax' and alpha is not None:
            raise ValueError(f"{name}: alpha applies to the sigmoid variants only.")
        check_beta(beta, name)
        check_reduction(name, reduction)
        self.loss_type = loss_type
        self.weighting = weighting
        self.use_sigmoid = expected_sigmoid
        self.beta = float(beta)
        self.gamma = float(gamma or 0)
        self.reduction = reduction
        self.loss_weight = loss_weight
        register_per_class(self, name, 'alpha', alpha, allow_scalar=True)
        self.class_counts = None
        self.register_buffer('class_weight', None)
        if class_counts is not None:
            self.set_class_counts(class_counts)

    @staticmethod
    def config_uses_sigmoid(cfg: dict) -> bool:
        """The head's ``use_sigmoid`` for a config of this loss: False only for
        ``loss_type='softmax'``."""
        return cfg.get('loss_type', 'focal') != 'softmax'

    def set_class_counts(self, class_counts: Sequence[int], device=None) -> None:
        """Sets the counts and the class weights (a buffer, saved in checkpoints),
        on ``device`` or, by default, where the current weights are."""
        weights = effective_number_weights(class_counts, self.beta)
        if device is None and self.class_weight is not None:
            device = self.class_weight.device
        self.class_counts = [int(c) for c in class_counts]
        self.class_weight = weights.to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a loss built without counts takes the checkpoint's class weights
        key = prefix + 'class_weight'
        if self.class_weight is None and key in state_dict:
            self.class_weight = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (N, C) logits for the sigmoid variants, (N, C + 1)
                class scores (background last) for ``'softmax'``.
            target (Tensor | tuple): (N,) int64 labels in [0, C], C =
                background; the sigmoid variants also take (N, C) float one-hot /
                soft targets and quality targets (labels (N,), scores (N,)).
            weight (Tensor, optional): (N,) label weights, or (N, C) for the
                sigmoid variants; 0 = ignored.
            avg_factor (float, optional): 'mean' divides the sum by it (mmdet's
                heads pass the number of positives, the paper's normaliser).
            reduction_override (str, optional): 'none', 'mean' or 'sum'.

        Returns:
            Tensor: fp32 loss, 0-dim, or elementwise for 'none'.
        """
        name = type(self).__name__
        reduction = resolve_reduction(name, self.reduction, reduction_override)
        self._check_classes(name, pred)
        if self.loss_type == 'softmax':
            inputs = ops.softmax_inputs(name, pred, target, weight)
            loss = self._softmax_loss(inputs)
            loss, numel = (loss if reduction == 'none' else loss.sum()), loss.numel()
        else:
            if self.activated:
                pred = ops.probability_logits(name, pred)
            inputs = ops.classification_inputs(name, pred, target, weight)
            class_weight = self.class_weight.to(pred.device)
            if self.weighting == 'sample':
                if not inputs.target_is_index:
                    raise ValueError(
                        f"{name}: weighting='sample' weighs each anchor by its own class, "
                        'so it needs (N,) index labels; got targets of shape '
                        f"{tuple(target.shape)}. Use weighting='class' for (N, C) targets.")
                inputs = inputs.weighted_by_label(self._label_class_weight(pred.device))
                class_weight = None
            coefficients = ops.FocalCoefficients(self.alpha, class_weight, None)
            coefficients.check(name, pred.shape[1])
            loss = ops.sigmoid_focal(name, self.impl, inputs, self.gamma, coefficients,
                                     reduction != 'none')
            numel = pred.numel()
        return self.loss_weight * reduce_loss(name, loss, reduction, avg_factor, numel)

    def _check_classes(self, name: str, pred: Tensor) -> None:
        """Class counts are set, and pred has a column per class (and one for the
        background with softmax)."""
        if self.class_weight is None:
            raise RuntimeError(
                f'{name}: no class counts. Give class_counts=[...] in the loss config '
                '(tools/class_counts.py prints them for a COCO annotation file) or '
                'call set_class_counts() before training.')
        num_classes = self.class_weight.numel()
        if self.loss_type == 'softmax':
            if pred.dim() != 2 or pred.shape[1] != num_classes + 1:
                raise ValueError(
                    f"{name}: loss_type='softmax' needs (N, C + 1) = (N, {num_classes + 1}) "
                    f'scores (use_sigmoid=False in the head), got {tuple(pred.shape)}.')
        elif pred.dim() == 2 and pred.shape[1] != num_classes:
            raise ValueError(f'{name}: `class_counts` has {num_classes} values but pred '
                             f'has {pred.shape[1]} classes.')

    def _label_class_weight(self, device) -> Tensor:
        """(C + 1,) weight of each label: w_c, and 1.0 (the mean class weight) for
        the background."""
        return torch.cat([self.class_weight, self.class_weight.new_ones(1)]).to(device)

    def _softmax_loss(self, inputs) -> Tensor:
        """(N,) cross-entropy of each anchor times the weight of its label."""
        pred = inputs.pred.to(inputs.dtype)
        loss = F.cross_entropy(pred, inputs.target, reduction='none',
                               weight=self._label_class_weight(pred.device).to(inputs.dtype))
        return loss if inputs.weight is None else loss * inputs.weight.to(inputs.dtype)
