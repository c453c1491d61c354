"""Sigmoid focal loss with per-class alpha, class weights and pos_weight."""
from typing import Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from .utils import (always_sigmoid, check_reduction, reduce_loss, reject_unknown_keys,
                    resolve_reduction)


def per_class_tensor(loss_name: str, name: str, value, allow_scalar: bool = False):
    """A config value (None, scalar or list) to None, a float or a (C,) tensor."""
    if value is None or (allow_scalar and isinstance(value, (int, float))):
        return value
    tensor = torch.as_tensor(value, dtype=torch.float32)
    if tensor.dim() != 1:
        raise ValueError(f'{loss_name}: `{name}` must be a list with one value per '
                         f'class, got {value!r}.')
    return tensor


def register_per_class(module: nn.Module, loss_name: str, name: str, value,
                       allow_scalar: bool = False) -> None:
    """Stores a per-class config value as a buffer (so it follows the module's
    device), and a scalar or None as a plain attribute."""
    value = per_class_tensor(loss_name, name, value, allow_scalar)
    if isinstance(value, Tensor):
        module.register_buffer(name, value, persistent=False)
    else:
        setattr(module, name, value)


@MODELS.register_module()
class SigmoidFocalLoss(nn.Module):
    """Focal loss ``w_c * alpha_t * (1 - p_t)^gamma * BCE`` (Lin et al., 2017).

    The modulator is computed in log space, so gradients stay finite for
    gamma < 1 and for logits of +-100. Works the same on every device.

    Args:
        use_sigmoid (bool): Must be True; the head reads it from the config.
        gamma (float): Focusing parameter. Default 2.0.
        alpha (float | list[float] | None): Weight of the positive term, a
            scalar or one value per class; None for no alpha. Default 0.25.
        class_weight (list[float], optional): Weight of each class column.
        pos_weight (list[float], optional): Extra weight of the positive
            (y = 1) BCE term of each class, as in multi-label BCE.
        reduction (str): 'none', 'mean' or 'sum'. Default 'mean'.
        loss_weight (float): Multiplier of the loss. Default 1.0.
        impl (str): 'auto' (a fused Triton kernel on CUDA tensors when triton is
            installed, else PyTorch ops), 'triton' or 'torch'.
        activated (bool): ``pred`` holds probabilities, not logits (TOOD's head
            passes them, with QualityFocalLoss(activated=True)); the loss computes
            on their logits. Default False.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: Union[float, Sequence[float], None] = 0.25,
                 class_weight: Optional[Sequence[float]] = None,
                 pos_weight: Optional[Sequence[float]] = None,
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
        if not use_sigmoid:
            raise ValueError(f'{name}: use_sigmoid=False is not supported; the focal '
                             'loss is sigmoid based, set use_sigmoid=True.')
        if gamma < 0:
            raise ValueError(f'{name}: gamma must be >= 0, got {gamma}.')
        check_reduction(name, reduction)
        self.use_sigmoid = True
        self.gamma = float(gamma)
        self.reduction = reduction
        self.loss_weight = loss_weight
        register_per_class(self, name, 'alpha', alpha, allow_scalar=True)
        register_per_class(self, name, 'class_weight', class_weight)
        register_per_class(self, name, 'pos_weight', pos_weight)

    config_uses_sigmoid = staticmethod(always_sigmoid)

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
                weights, 0 = ignored.
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
        coefficients = ops.FocalCoefficients(self.alpha, self.class_weight, self.pos_weight)
        coefficients.check(name, pred.shape[1])
        loss = ops.sigmoid_focal(name, self.impl, inputs, self.gamma, coefficients,
                                 reduction != 'none')
        return self.loss_weight * reduce_loss(name, loss, reduction, avg_factor,
                                              pred.numel())
