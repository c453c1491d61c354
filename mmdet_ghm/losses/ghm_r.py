"""GHM-R: gradient harmonized Authentic Smooth L1 (Li, Liu, Wang, AAAI 2019)."""
import functools
from typing import Optional

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .. import ops
from ..functional import asl1_root, weighted_asl1
from .gradient_density import GradientDensity
from .utils import (check_finite, check_reduction, check_weight, compute_dtype,
                    normalise, reject_unknown_keys, resolve_reduction)


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
                 sync_density: bool = True,
                 **unknown):
        super().__init__()
        reject_unknown_keys(type(self), unknown)
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
        if pred.dim() < 2 or pred.shape[-1] == 0:
            raise ValueError(f'GHMRLoss: `pred` must be (N, 4) or (N, 4k) deltas, got '
                             f'shape {tuple(pred.shape)}.')
        check_finite('GHMRLoss', 'pred', pred)
        check_finite('GHMRLoss', 'target', target)
        shape = pred.shape  # the elementwise loss is computed on (M, k)
        pred, target = pred.reshape(-1, shape[-1]), target.reshape(-1, shape[-1])
        if weight is not None:
            if weight.shape == shape:
                weight = weight.reshape(pred.shape)
            elif weight.shape == shape[:-1]:
                weight = weight.reshape(-1)
            weight = check_weight('GHMRLoss', weight, tuple(pred.shape))
        # on the CPU only the rows (anchors) with a weight (a few in a thousand)
        index = None if weight is None or not selects_rows(pred) else rows_with_weight(weight)

        def pick(tensor):  # the rows the loss is computed on
            return tensor if index is None else tensor.index_select(0, index)

        picked = (pick(pred.detach()), pick(target), None if weight is None else pick(weight))
        dtype = compute_dtype(pred)
        with torch.no_grad():
            diff = picked[0].to(dtype) - picked[1].to(dtype)
            root = asl1_root(diff, self.mu)

        def kernel(_):
            counts, idx = ops.gradient_histogram(*picked, self.density.bins,
                                                 ops.GHMR_NORM, self.mu,
                                                 return_index=True)
            return self.density.weights_of(idx, counts)

        def twin():
            valid = None if weight is None else picked[2] > 0
            return self.density((diff.abs() / root).float(), valid)

        density_weight, normaliser = ops.kernel_or_twin('GHMRLoss', self.impl, pred,
                                                        kernel, twin)
        if weight is not None:
            density_weight = density_weight * picked[2].to(dtype)
        loss = weighted_asl1(pred, diff, root, density_weight, self.mu,
                             reduction != 'none', index)
        loss = loss if reduction != 'none' else loss.view(shape)
        return self.loss_weight * normalise(loss, reduction, normaliser)


def selects_rows(pred: Tensor) -> bool:
    """Whether the loss first picks the rows with a positive weight (4 elements
    per positive anchor, a few in a thousand) and computes only on them: on
    the CPU, where ``nonzero`` costs no host-device sync. On the GPU it
    computes on all elements."""
    return pred.device.type == 'cpu'


def rows_with_weight(weight: Tensor) -> Tensor:
    """(R,) indices of the rows of (M, k) weights (checked finite and >= 0) with
    a weight > 0: ``nonzero`` of the row sums, taken as a sum of the k columns
    (a reduction over a short last dimension is several times slower)."""
    return functools.reduce(torch.add, weight.unbind(1)).nonzero().squeeze(1)
