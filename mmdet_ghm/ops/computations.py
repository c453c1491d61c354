"""The computations of the losses, one function each, each running the Triton
kernel or the PyTorch implementation (``dispatch.kernel_or_torch`` decides, once
per computation and call).

    GHM-C:  ghmc_histogram -> GradientDensity.weigh -> ghmc_weighted_bce
    GHM-R:  ghmr_histogram -> GradientDensity.weigh -> weighted_asl1
    focal:  sigmoid_focal
    EFL:    equalized_focal -> ClassGradientRatio.add

The kernel modules import triton; they are imported where a kernel runs, which
:func:`dispatch.use_triton` allows only with a triton that builds them.
"""
from typing import Tuple

from torch import Tensor

from . import asl1_torch, equalized_focal_torch, focal_torch, ghmc_torch, histogram_torch
from .dispatch import kernel_or_torch
from .inputs import ClassificationInputs, FocalCoefficients, RegressionInputs, weight_layout


def ghmc_histogram(loss_name: str, impl: str, inputs: ClassificationInputs,
                   bins: int) -> Tensor:
    """int64 counts (bins,) of the valid elements per bin of ``g = |sigmoid(x) - y|``."""
    def kernel():
        from . import histogram_triton
        return histogram_triton.gradient_histogram(
            inputs.pred, inputs.target, inputs.score, inputs.weight, inputs.weight_layout,
            bins, histogram_triton.GHMC_NORM)

    return kernel_or_torch(loss_name, impl, inputs.pred, kernel,
                           lambda: histogram_torch.ghmc_histogram(inputs, bins))


def ghmc_weighted_bce(loss_name: str, impl: str, inputs: ClassificationInputs,
                      bin_weights: Tensor, reduce: bool) -> Tensor:
    """Sum (or (N, C) losses) of ``BCE(x, y) * bin_weights[bin(g)] * weight``, in
    fp32. The kernel bins again; the PyTorch implementation reuses the bins of
    its histogram (``histogram_torch.ghmc_binned``)."""
    def kernel():
        from . import ghmc_triton
        return ghmc_triton.ghmc_weighted_bce(inputs.pred, inputs.target, inputs.score,
                                             inputs.weight, inputs.weight_layout,
                                             bin_weights, reduce)

    def torch_impl():
        p, idx = histogram_torch.ghmc_binned(inputs, bin_weights.numel() - 1)
        return ghmc_torch.ghmc_weighted_bce(inputs.pred, inputs.torch_target,
                                            inputs.torch_weight, inputs.row_weight,
                                            bin_weights, p, idx, reduce)

    return kernel_or_torch(loss_name, impl, inputs.pred, kernel, torch_impl)


def ghmr_histogram(loss_name: str, impl: str, inputs: RegressionInputs, bins: int,
                   mu: float) -> Tuple[Tensor, Tensor]:
    """Counts of the valid elements per bin of ASL1's ``g = |d| / sqrt(d^2 + mu^2)``
    and each element's bin (``bins`` for ignored ones)."""
    def kernel():
        from . import histogram_triton
        return histogram_triton.gradient_histogram(
            inputs.pred_rows, inputs.target_rows, None, *weight_layout(inputs.weight_rows),
            bins, histogram_triton.GHMR_NORM, mu, return_index=True)

    def torch_impl():
        valid = None if inputs.weight_rows is None else inputs.weight_rows > 0
        return histogram_torch.ghmr_histogram(
            asl1_torch.gradient_norm(inputs.diff, inputs.root), valid, bins)

    return kernel_or_torch(loss_name, impl, inputs.pred, kernel, torch_impl)


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


def sigmoid_focal(loss_name: str, impl: str, inputs: ClassificationInputs, gamma: float,
                  coefficients: FocalCoefficients, reduce: bool) -> Tensor:
    """Sum (or (N, C) losses) of ``w_c * alpha_t * (1 - p_t)^gamma * BCE_pw * weight``,
    in fp32."""
    def kernel():
        from . import focal_triton
        return focal_triton.sigmoid_focal_loss(
            inputs.pred, inputs.target, inputs.score, inputs.weight, inputs.weight_layout,
            gamma,
            *focal_triton.coefficient_vectors(coefficients, inputs.pred.shape[1],
                                              inputs.pred.device), reduce)

    def torch_impl():
        if inputs.binary_index:
            return focal_torch.sigmoid_focal_index_loss(
                inputs.pred, inputs.target, inputs.torch_weight, inputs.row_weight, gamma,
                coefficients, reduce)
        return focal_torch.sigmoid_focal_dense_loss(*inputs.dense(), gamma, coefficients,
                                                    reduce)

    return kernel_or_torch(loss_name, impl, inputs.pred, kernel, torch_impl)


def equalized_focal(loss_name: str, impl: str, inputs: ClassificationInputs, gamma: Tensor,
                    coefficients: FocalCoefficients,
                    reduce: bool) -> Tuple[Tensor, Tensor]:
    """Sum (or (N, C) losses) of ``w_c * alpha_t * (1 - p_t)^gamma_c * BCE * weight``
    in fp32, with gamma (C,) per class, and in the same pass the (2, C) fp32 sums
    per class of ``|d loss / dx|`` over the positive (row 0) and negative (row 1)
    elements (label weights included, the upstream gradient not)."""
    def kernel():
        from . import equalized_focal_triton, focal_triton
        return equalized_focal_triton.equalized_focal_loss(
            inputs.pred, inputs.target, inputs.score, inputs.weight, inputs.weight_layout,
            gamma,
            *focal_triton.coefficient_vectors(coefficients, inputs.pred.shape[1],
                                              inputs.pred.device), reduce)

    def torch_impl():
        if inputs.binary_index:
            return equalized_focal_torch.equalized_focal_index_loss(
                inputs.pred, inputs.target, inputs.torch_weight, inputs.row_weight, gamma,
                coefficients, reduce)
        return equalized_focal_torch.equalized_focal_dense_loss(
            *inputs.dense(), gamma, coefficients, reduce)

    return kernel_or_torch(loss_name, impl, inputs.pred, kernel, torch_impl)
