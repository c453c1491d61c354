"""GHM-C: gradient harmonized binary cross-entropy (Li, Liu, Wang, AAAI 2019)."""
import sys
from typing import Optional

from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.module import register_module_module_registration_hook

from .. import ops
from .gradient_density import GradientDensity
from .mmdet_keys import register_mmdet_keys_hook
from .utils import (always_sigmoid, check_reduction, normalise, reject_unknown_keys,
                    resolve_reduction)


@MODELS.register_module()
class GHMCLoss(nn.Module):
    """GHM-C loss: BCE of each element weighted by ``tot / GD(g) / n``.

    ``g = |sigmoid(x) - y|`` (detached) is binned into ``bins`` even bins of
    [0, 1]; an element's weight is the number of valid elements ``tot`` over the
    (EMA) count of its bin, divided by the number of non-empty bins. The mean
    is the weighted BCE sum over ``tot``. Unlike mmdet's ``GHMC`` it never reads
    a tensor back to the host and keeps its statistics in fp32.

    Args:
        bins (int): Number of bins. Default 30 (COCO config).
        momentum (float): EMA momentum of the bin counts. Default 0.75.
        use_sigmoid (bool): Must be True (the loss is BCE based); the head reads
            it from the config to predict C scores per anchor.
        reduction (str): 'none', 'mean' or 'sum'. Default 'mean'.
        loss_weight (float): Multiplier of the loss. Default 1.0.
        impl (str): 'auto' (Triton kernels on CUDA tensors when triton is
            installed, else PyTorch ops), 'triton' or 'torch'.
        sync_density (bool): Under torch.distributed, make the EMA of the bin
            counts equal across ranks once per iteration (the mean of the
            ranks'), which needs ``SyncStatisticsHook`` in ``custom_hooks``;
            each call weighs with its own rank's counts. Default True.
        activated (bool): ``pred`` holds probabilities, not logits (TOOD's head
            passes them, with QualityFocalLoss(activated=True)); the loss computes
            on their logits. Default False.
    """

    def __init__(self,
                 bins: int = 30,
                 momentum: float = 0.75,
                 use_sigmoid: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 impl: str = 'auto',
                 sync_density: bool = True,
                 activated: bool = False,
                 **unknown):
        super().__init__()
        reject_unknown_keys(type(self), unknown)
        name = type(self).__name__
        if not use_sigmoid:
            raise ValueError(f'{name}: use_sigmoid=False is not supported; GHM-C '
                             'is a sigmoid (BCE) loss, set use_sigmoid=True.')
        check_reduction(name, reduction)
        ops.check_impl(name, impl)
        self.use_sigmoid = True
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.impl = impl
        self.activated = activated
        self.density = GradientDensity(bins, momentum, sync=sync_density, loss_name=name)
        # a checkpoint of mmdet's GHMC loads with its EMA (acc_sum -> density.acc_sum)
        register_mmdet_keys_hook(self)

    config_uses_sigmoid = staticmethod(always_sigmoid)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (N, C) logits, fp32, fp16, bf16 (or fp64).
            target (Tensor | tuple): (N,) int64 labels in [0, C], C =
                background, (N, C) float one-hot / soft targets, or a quality
                target (labels (N,), scores (N,)) as GFL, TOOD and RTMDet pass it
                (the score is the target of the label's column).
            weight (Tensor, optional): (N,), (N, C) or flattened (N * C,) label
                weights, as mmdet's sigmoid losses take them; elements
                with weight 0 are ignored (no loss, not in the histogram), the
                others' loss is multiplied by their weight.
            avg_factor (float, optional): Accepted for mmdet's call contract
                and not used: GHM-C normalises by ``tot``, the number of valid
                elements, which is part of the paper's density weight.
            reduction_override (str, optional): 'none', 'mean' or 'sum'.

        Returns:
            Tensor: fp32 loss, 0-dim, or (N, C) for reduction 'none'. With all
            elements ignored it is 0.
        """
        name = type(self).__name__
        reduction = resolve_reduction(name, self.reduction, reduction_override)
        if self.activated:
            pred = ops.probability_logits(name, pred)
        inputs = ops.classification_inputs(name, pred, target, weight)
        counts = ops.ghmc_histogram(name, self.impl, inputs, self.density.bins)
        bin_weights, normaliser = self.density.weigh(counts)
        loss = ops.ghmc_weighted_bce(name, self.impl, inputs, bin_weights,
                                     reduction != 'none')
        return self.loss_weight * normalise(loss, reduction, normaliser)


def refuse_anchor_scoring_heads(module: nn.Module, name: str, submodule) -> None:
    """Stops the build of a PAA head whose ``loss_cls`` is a GHMCLoss.

    PAA scores each object's candidate anchors with ``loss_cls`` (reduction
    'none', on the candidates alone) and fits a two-component Gaussian mixture
    to the scores. GHM-C's weights are a density over the elements of the call,
    so the scoring call weighs the candidates by their own histogram (a loss
    other than the one trained) and, in training mode, updates the EMA with it.
    Its scores carry outliers onto which the mixture collapses a component, and
    whether scikit-learn's fit then fails depends on the machine's rounding.
    Called by torch for every submodule registration (a global hook).
    """
    if name != 'loss_cls' or not isinstance(submodule, GHMCLoss):
        return
    paa_head = sys.modules.get('mmdet.models.dense_heads.paa_head')
    if paa_head is not None and isinstance(module, paa_head.PAAHead):
        raise ValueError(
            'GHMCLoss can not be the loss_cls of PAAHead: PAA scores candidate '
            "anchors with loss_cls to assign labels, and GHM-C's density weights "
            'of those candidates alone are no score (they also update its EMA). '
            "Use FocalLoss (PAA's own) or SigmoidFocalLoss / ClassBalancedFocalLoss "
            'for PAA, or GHMCLoss in a detector that does not score anchors by '
            'their loss (RetinaNet, ATSS, FCOS, ...).')


register_module_module_registration_hook(refuse_anchor_scoring_heads)
