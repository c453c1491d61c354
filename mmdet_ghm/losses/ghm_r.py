"""GHM-R: gradient harmonized Authentic Smooth L1 (Li, Liu, Wang, AAAI 2019)."""
from typing import Optional

from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from ..functional import asl1_gradient_norm, asl1_loss
from .gradient_density import GradientDensity
from .utils import (check_finite, check_reduction, check_weight, compute_dtype,
                    normalise, resolve_reduction)


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
            is a few torch ops on the (few) positive anchors.
        sync_density (bool): Under torch.distributed, sum the bin counts over
            all ranks so every rank uses the global batch's density and keeps
            the same EMA (one small all-reduce per call). Default True.
    """

    def __init__(self,
                 mu: float = 0.02,
                 bins: int = 10,
                 momentum: float = 0.7,
                 reduction: str = 'mean',
                 loss_weight: float = 10.0,
                 impl: str = 'auto',
                 sync_density: bool = True):
        super().__init__()
        ops.check_impl('GHMRLoss', impl)
        self.impl = impl
        if not mu > 0:
            raise ValueError(f'GHMRLoss: mu must be > 0, got {mu}.')
        check_reduction('GHMRLoss', reduction)
        self.mu = float(mu)
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.density = GradientDensity(bins, momentum, sync=sync_density,
                                       owner='GHMRLoss')

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
        reduction = resolve_reduction('GHMRLoss', self.reduction, reduction_override)
        if not pred.is_floating_point() or target.shape != pred.shape:
            raise ValueError(
                f'GHMRLoss: `pred` must be float and `target` of the same shape; got '
                f'pred {tuple(pred.shape)} {pred.dtype}, target {tuple(target.shape)}.')
        if pred.dim() < 2:
            raise ValueError(f'GHMRLoss: `pred` must be (N, 4) or (N, 4k) deltas, got '
                             f'shape {tuple(pred.shape)}.')
        check_finite('GHMRLoss', 'pred', pred)
        check_finite('GHMRLoss', 'target', target)
        shape = pred.shape  # the elementwise loss is computed on (M, k)
        pred, target = pred.reshape(-1, shape[-1]), target.reshape(-1, shape[-1])
        if weight is None:
            weight = pred.new_ones(()).expand(pred.shape)
        else:
            if weight.shape == shape:
                weight = weight.reshape(pred.shape)
            elif weight.shape == shape[:-1]:
                weight = weight.reshape(-1)
            weight = check_weight('GHMRLoss', weight, tuple(pred.shape))
        dtype = compute_dtype(pred)
        diff = pred.to(dtype) - target.to(dtype)
        label_weight = weight.to(dtype)

        def kernel(_):
            counts, idx = ops.gradient_histogram(pred, target, weight, self.density.bins,
                                                 ops.GHMR_NORM, self.mu,
                                                 return_index=True)
            return self.density.weights_of(idx, counts)

        def twin():
            g = asl1_gradient_norm(diff, self.mu).float()
            return self.density(g, label_weight > 0)

        density_weight, normaliser = ops.kernel_or_twin('GHMRLoss', self.impl, pred,
                                                        kernel, twin)
        loss = asl1_loss(diff, self.mu) * (density_weight * label_weight)
        loss = loss.sum() if reduction != 'none' else loss.view(shape)
        return self.loss_weight * normalise(loss, reduction, normaliser)
