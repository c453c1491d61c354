"""GHM-R: gradient harmonized Authentic Smooth L1 (Li, Liu, Wang, AAAI 2019)."""
from typing import Optional

from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from .gradient_density import GradientDensity
from .mmdet_keys import register_mmdet_keys_hook
from .utils import check_reduction, normalise, reject_unknown_keys, resolve_reduction


@MODELS.register_module()
class GHMRLoss(nn.Module):
    """GHM-R loss: ASL1 of each element weighted by ``tot / GD(g) / n``.

    ``ASL1(d) = sqrt(d^2 + mu^2) - mu`` with ``d = pred - target``; its gradient
    norm ``g = |d| / sqrt(d^2 + mu^2)`` in [0, 1) is binned as in GHM-C. The
    mean is the weighted sum over ``tot``, the number of valid elements (4 per
    positive anchor).

    Args:
        mu (float): ASL1 parameter. Default 0.02.
        bins (int): Number of bins. Default 10.
        momentum (float): EMA momentum of the bin counts. Default 0.7.
        reduction (str): 'none', 'mean' or 'sum'. Default 'mean'.
        loss_weight (float): Multiplier of the loss. Default 10.0 (COCO config).
        impl (str): 'auto' (the Triton histogram on CUDA tensors when triton is
            installed, else PyTorch ops), 'triton' or 'torch'. The loss itself
            is a few torch ops; on CPU tensors they run on the rows with a
            weight only (the few positive anchors), see :func:`selects_rows`.
        sync_density (bool): Under torch.distributed, make the EMA of the bin
            counts equal across ranks once per iteration (the mean of the
            ranks'), which needs ``SyncStatisticsHook`` in ``custom_hooks``;
            each call weighs with its own rank's counts. Default True.
    """

    def __init__(self,
                 mu: float = 0.02,
                 bins: int = 10,
                 momentum: float = 0.7,
                 reduction: str = 'mean',
                 loss_weight: float = 10.0,
                 impl: str = 'auto',
                 sync_density: bool = True,
                 **unknown):
        super().__init__()
        reject_unknown_keys(type(self), unknown)
        name = type(self).__name__
        ops.check_impl(name, impl)
        self.impl = impl
        if not mu > 0:
            raise ValueError(f'{name}: mu must be > 0, got {mu}.')
        check_reduction(name, reduction)
        self.mu = float(mu)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.density = GradientDensity(bins, momentum, sync=sync_density, loss_name=name)
        # a checkpoint of mmdet's GHMR loads with its EMA (acc_sum -> density.acc_sum)
        register_mmdet_keys_hook(self)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (N, 4) or (N, 4k) box deltas, any float dtype, or
                any (..., k) shape (FreeAnchor passes (gts, bag, 4)).
            target (Tensor): Regression targets of pred's shape.
            weight (Tensor, optional): Weights of pred's shape or of its shape
                without the last dimension; 0 means ignored (e.g. the box
                weights of negative anchors).
            avg_factor (float, optional): Accepted for mmdet's call contract
                and not used: GHM-R normalises by ``tot``.
            reduction_override (str, optional): 'none', 'mean' or 'sum'.

        Returns:
            Tensor: fp32 loss, 0-dim, or of pred's shape for 'none'. With no
            valid element (no positive anchor) it is 0.
        """
        name = type(self).__name__
        reduction = resolve_reduction(name, self.reduction, reduction_override)
        inputs = ops.regression_inputs(name, pred, target, weight, self.mu,
                                       select_rows=selects_rows(pred))
        counts, bin_index = ops.ghmr_histogram(name, self.impl, inputs, self.density.bins,
                                               self.mu)
        bin_weights, normaliser = self.density.weigh(counts)
        loss = ops.weighted_asl1(inputs, bin_weights, bin_index, self.mu,
                                 reduction != 'none')
        return self.loss_weight * normalise(loss, reduction, normaliser)


def selects_rows(pred: Tensor) -> bool:
    """Whether the loss first picks the rows with a positive weight (4 elements
    per positive anchor, a few in a thousand) and computes only on them: on
    the CPU, where ``nonzero`` costs no host-device sync. On the GPU it
    computes on all elements."""
    return pred.device.type == 'cpu'
