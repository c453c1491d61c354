"""One entry per computation of the losses, each running the Triton kernel or the
PyTorch implementation (``dispatch.kernel_or_torch`` decides, per call).

    GHM-C:  ghmc_histogram -> GradientDensity.weigh -> ghmc_weighted_bce
    GHM-R:  ghmr_histogram -> GradientDensity.weigh -> weighted_asl1
    focal:  sigmoid_focal
    EFL:    equalized_focal -> ClassGradientRatio.add

The kernel modules import triton; they are imported where a kernel runs, which
:func:`dispatch.use_triton` allows only with a triton that builds them.
"""
from typing import Optional, Tuple

from torch import Tensor

from . import asl1_torch, equalized_focal_torch, focal_torch, ghmc_torch, histogram_torch
from .dispatch import kernel_or_torch
from .histogram_torch import BinnedChunks
from .inputs import ClassificationInputs, FocalCoefficients, RegressionInputs


def ghmc_histogram(owner: str, impl: str, inputs: ClassificationInputs,
                   bins: int) -> Tuple[Tensor, Optional[BinnedChunks]]:
    """Counts of the valid elements per bin of ``g = |sigmoid(x) - y|``.

    Returns:
        tuple: int64 counts (bins,), and where the PyTorch implementation ran
        its per-chunk sigmoid and bins (which :func:`ghmc_weighted_bce` then
        reuses), else None.
    """
    def kernel():
        from . import histogram_triton
        return histogram_triton.gradient_histogram(
            inputs.pred, inputs.target, inputs.weight, bins, histogram_triton.GHMC_NORM), None

    return kernel_or_torch(owner, impl, inputs.pred, kernel, lambda: (
        histogram_torch.ghmc_histogram(inputs.pred.detach().to(inputs.dtype),
                                       inputs.torch_target, inputs.torch_weight, bins)))


def ghmc_weighted_bce(owner: str, impl: str, inputs: ClassificationInputs,
                      bin_weights: Tensor, reduce: bool,
                      binned: Optional[BinnedChunks]) -> Tensor:
    """Sum (or (N, C) losses) of ``BCE(x, y) * bin_weights[bin(g)] * weight``, in
    fp32. Runs in PyTorch where the histogram did (``binned`` given)."""
    def torch_impl():
        return ghmc_torch.ghmc_weighted_bce(inputs.pred, inputs.torch_target,
                                            inputs.torch_weight, bin_weights, reduce, binned)

    def kernel():
        from . import ghmc_triton
        return ghmc_triton.ghmc_weighted_bce(inputs.pred, inputs.target, inputs.weight,
                                             bin_weights, reduce)

    if binned is not None:
        return torch_impl()
    return kernel_or_torch(owner, impl, inputs.pred, kernel, torch_impl)


def ghmr_histogram(owner: str, impl: str, inputs: RegressionInputs, bins: int,
                   mu: float) -> Tuple[Tensor, Tensor]:
    """Counts of the valid elements per bin of ASL1's ``g = |d| / sqrt(d^2 + mu^2)``
    and each element's bin (``bins`` for ignored ones)."""
    def kernel():
        from . import histogram_triton
        return histogram_triton.gradient_histogram(
            inputs.pred_rows, inputs.target_rows, inputs.weight_rows, bins,
            histogram_triton.GHMR_NORM, mu, return_index=True)

    def torch_impl():
        valid = None if inputs.weight_rows is None else inputs.weight_rows > 0
        return histogram_torch.ghmr_histogram((inputs.diff.abs() / inputs.root).float(),
                                              valid, bins)

    return kernel_or_torch(owner, impl, inputs.pred, kernel, torch_impl)


def weighted_asl1(inputs: RegressionInputs, bin_weights: Tensor, bin_index: Tensor,
                  mu: float, reduce: bool) -> Tensor:
    """Sum (or losses of the given shape) of ``ASL1(d) * bin_weights[bin] * weight``:
    a few elementwise ops on the rows with a weight, PyTorch on every device."""
    weight = histogram_torch.bin_lookup(bin_weights, bin_index)
    if inputs.weight_rows is not None:
        weight = weight * inputs.weight_rows.to(inputs.diff.dtype)
    loss = asl1_torch.weighted_asl1(inputs.pred, inputs.diff, inputs.root, weight, mu,
                                    reduce, inputs.rows)
    return loss if reduce else loss.view(inputs.shape)


def sigmoid_focal(owner: str, impl: str, inputs: ClassificationInputs, gamma: float,
                  coefficients: FocalCoefficients, reduce: bool) -> Tensor:
    """Sum (or (N, C) losses) of ``w_c * alpha_t * (1 - p_t)^gamma * BCE_pw * weight``,
    in fp32."""
    def kernel():
        from . import focal_triton
        return focal_triton.sigmoid_focal_loss(
            inputs.pred, inputs.target, inputs.weight, gamma,
            *coefficients.kernel_vectors(inputs.pred.shape[1], inputs.pred.device), reduce)

    def torch_impl():
        if inputs.target_is_index:
            return focal_torch.sigmoid_focal_index_loss(
                inputs.pred, inputs.target, inputs.torch_weight, gamma, coefficients, reduce)
        return focal_torch.sigmoid_focal_dense_loss(*inputs.dense(), gamma, coefficients,
                                                    reduce)

    return kernel_or_torch(owner, impl, inputs.pred, kernel, torch_impl)


def equalized_focal(owner: str, impl: str, inputs: ClassificationInputs, gamma: Tensor,
                    coefficients: FocalCoefficients,
                    reduce: bool) -> Tuple[Tensor, Tensor]:
    """Sum (or (N, C) losses) of ``w_c * alpha_t * (1 - p_t)^gamma_c * BCE * weight``
    in fp32, with gamma (C,) per class, and in the same pass the (2, C) fp32 sums
    per class of ``|d loss / dx|`` over the positive (row 0) and negative (row 1)
    elements (label weights included, the upstream gradient not)."""
    def kernel():
        from . import equalized_focal_triton
        return equalized_focal_triton.equalized_focal_loss(
            inputs.pred, inputs.target, inputs.weight, gamma,
            *coefficients.kernel_vectors(inputs.pred.shape[1], inputs.pred.device), reduce)

    def torch_impl():
        if inputs.target_is_index:
            return equalized_focal_torch.equalized_focal_index_loss(
                inputs.pred, inputs.target, inputs.torch_weight, gamma, coefficients, reduce)
        return equalized_focal_torch.equalized_focal_dense_loss(
            *inputs.dense(), gamma, coefficients, reduce)

    return kernel_or_torch(owner, impl, inputs.pred, kernel, torch_impl)
