"""Every Triton kernel against its PyTorch implementation (interpreter on the CPU here)."""
import pytest
import torch

from mmdet_ghm.functional import bin_index, one_hot_labels
from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss, ghm_r)
from mmdet_ghm.ops import dispatch, histogram_torch, histogram_triton, triton_common
from mmdet_ghm.ops.histogram_torch import bin_counts
from mmdet_ghm.ops.inputs import ClassificationInputs, classification_inputs, weight_layout

from ..helpers import RUNS_KERNELS, loss_and_grad, make_cls_inputs, make_reg_inputs

pytestmark = RUNS_KERNELS

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6),
       torch.float16: dict(rtol=2e-3, atol=1e-4),
       torch.bfloat16: dict(rtol=2e-2, atol=1e-3)}

# 1237 * 7 elements: not a multiple of the 1024-element block
CASES = {
    'index labels, row weights': dict(),
    'all background': dict(pos_frac=0.0),
    'all ignored': dict(ignore_frac=1.0),
    'few elements': dict(num_anchors=3),
}


def cls_case(case, dtype=torch.float32, seed=0):
    kwargs = dict(num_anchors=1237, num_classes=7, seed=seed, dtype=dtype)
    kwargs.update(CASES[case])
    return [t.to(DEVICE) for t in make_cls_inputs(**kwargs)]


def dense(pred, labels, weight):
    return one_hot_labels(labels, pred.shape[1]), weight[:, None].expand_as(pred).contiguous()


BLOCK_HISTOGRAMS = {'tl.histogram': triton_common._tl_histogram,
                    'one-hot': triton_common.one_hot_histogram}


@pytest.fixture(params=BLOCK_HISTOGRAMS)
def block_histogram(request, monkeypatch):
    """The histogram kernel with each form of its block histogram: the one this
    triton builds, and the other one, which only the interpreter can swap in (a
    GPU compiles a kernel once per process)."""
    form = BLOCK_HISTOGRAMS[request.param]
    if form is not triton_common.block_histogram:
        if not dispatch.interpreting():
            pytest.skip(f'{request.param} is not the form this triton builds')
        monkeypatch.setattr(histogram_triton, 'block_histogram', form)
    return request.param


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('layout', ['index', 'dense'])
def test_histogram_kernel_ghmc(block_histogram, case, layout):
    pred, labels, weight = cls_case(case)
    one_hot, dense_weight = dense(pred, labels, weight)
    g = (pred.float().sigmoid() - one_hot).abs()
    expected = bin_counts(bin_index(g, 30, dense_weight > 0), 30)
    inputs = classification_inputs('test', pred, *(labels, weight) if layout == 'index'
                                   else (one_hot, dense_weight))
    counts = histogram_triton.gradient_histogram(pred, inputs.target, None, inputs.weight,
                                                 inputs.weight_layout, 30,
                                                 histogram_triton.GHMC_NORM)
    assert torch.equal(counts, expected)
    # the PyTorch implementation's sparse handling of index labels bins alike
    assert torch.equal(histogram_torch.ghmc_histogram(inputs, 30), expected)
    assert counts.sum() == (dense_weight > 0).sum()


def test_histogram_kernel_ghmr_with_index(block_histogram):
    pred, target, weight = [t.to(DEVICE) for t in make_reg_inputs(num_anchors=333)]
    diff = pred - target
    g = diff.abs() / torch.sqrt(diff * diff + 0.02**2)
    expected_index = bin_index(g, 10, weight > 0)
    counts, index = histogram_triton.gradient_histogram(
        pred, target, None, *weight_layout(weight), 10, histogram_triton.GHMR_NORM, 0.02,
        return_index=True)
    assert torch.equal(index, expected_index)
    assert torch.equal(counts, bin_counts(expected_index, 10))


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_ghmc_triton_equals_torch(case, dtype):
    triton_loss = GHMCLoss(impl='triton').to(DEVICE)
    torch_loss = GHMCLoss(impl='torch').to(DEVICE)
    for call in range(3):  # successive calls: the EMA path
        pred, labels, weight = cls_case(case, dtype, seed=call)
        loss, grad = loss_and_grad(triton_loss, pred, labels, weight)
        ref_loss, ref_grad = loss_and_grad(torch_loss, pred, labels, weight)
        assert loss.dtype == torch.float32 and grad.dtype == dtype
        torch.testing.assert_close(loss, ref_loss, **TOL[torch.float32])
        torch.testing.assert_close(grad, ref_grad, **TOL[dtype])
        torch.testing.assert_close(triton_loss.density.acc_sum,
                                   torch_loss.density.acc_sum)


@pytest.mark.parametrize('reduction', ['none', 'sum'])
def test_ghmc_triton_reductions_and_dense_targets(reduction):
    pred, labels, weight = cls_case('index labels, row weights')
    one_hot, dense_weight = dense(pred, labels, weight)
    args = (one_hot, dense_weight)
    loss, grad = loss_and_grad(GHMCLoss(impl='triton', reduction=reduction).to(DEVICE), pred, *args)
    ref_loss, ref_grad = loss_and_grad(GHMCLoss(impl='torch', reduction=reduction).to(DEVICE),
                             pred, *args)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


@pytest.mark.parametrize('pos_frac', [0.3, 0.0])
@pytest.mark.parametrize('rows', ['picked', 'all'])
def test_ghmr_triton_equals_torch(monkeypatch, pos_frac, rows):
    if rows == 'all':  # what CUDA tensors take: every element, weight-0 ones masked
        monkeypatch.setattr(ghm_r, 'selects_rows', lambda _: False)
    triton_loss = GHMRLoss(impl='triton').to(DEVICE)
    torch_loss = GHMRLoss(impl='torch').to(DEVICE)
    for call in range(3):
        pred, target, weight = [t.to(DEVICE) for t in make_reg_inputs(
            num_anchors=301, seed=call, pos_frac=pos_frac)]
        loss, grad = loss_and_grad(triton_loss, pred, target, weight)
        ref_loss, ref_grad = loss_and_grad(torch_loss, pred, target, weight)
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(grad, ref_grad)
        torch.testing.assert_close(triton_loss.density.acc_sum,
                                   torch_loss.density.acc_sum)


FOCAL_CONFIGS = {
    'retinanet': dict(gamma=2.0, alpha=0.25),
    'gamma<1, no alpha': dict(gamma=0.3, alpha=None),
    'per-class everything': dict(gamma=1.5, alpha=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                                 class_weight=[1, 2, 3, 4, 5, 6, 7],
                                 pos_weight=[2.0, 1, 1, 0.5, 1, 3, 1]),
}


@pytest.mark.parametrize('config', FOCAL_CONFIGS)
@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('reduction', ['mean', 'none'])
def test_focal_triton_equals_torch(config, case, reduction):
    kwargs = dict(FOCAL_CONFIGS[config], reduction=reduction)
    pred, labels, weight = cls_case(case)
    fused = SigmoidFocalLoss(impl='triton', **kwargs).to(DEVICE)
    torch_impl = SigmoidFocalLoss(impl='torch', **kwargs).to(DEVICE)
    for args in ((labels, weight), dense(pred, labels, weight)):
        loss, grad = loss_and_grad(fused, pred, *args, avg_factor=11.0)
        ref_loss, ref_grad = loss_and_grad(torch_impl, pred, *args, avg_factor=11.0)
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(grad, ref_grad)


def test_focal_triton_soft_targets_and_extreme_logits():
    pred = torch.tensor([[-100.0, 100.0, -100.0, 100.0, 0.0, 3.0]] * 3, device=DEVICE)
    soft = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.5, 0.2]] * 3, device=DEVICE)
    for gamma in (0.2, 2.0):
        loss, grad = loss_and_grad(SigmoidFocalLoss(gamma=gamma, impl='triton', reduction='none'),
                         pred, soft)
        ref_loss, ref_grad = loss_and_grad(SigmoidFocalLoss(gamma=gamma, impl='torch',
                                                  reduction='none'), pred, soft)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(loss, ref_loss)
        torch.testing.assert_close(grad, ref_grad)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_focal_triton_half_inputs(dtype):
    pred, labels, weight = cls_case('index labels, row weights', dtype)
    loss, grad = loss_and_grad(SigmoidFocalLoss(impl='triton'), pred, labels, weight)
    ref_loss, ref_grad = loss_and_grad(SigmoidFocalLoss(impl='torch'), pred, labels, weight)
    assert grad.dtype == dtype
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad, **TOL[dtype])


@pytest.mark.parametrize('loss_type', ['focal', 'sigmoid'])
def test_class_balanced_triton_equals_torch(loss_type):
    counts = [500, 120, 40, 9, 3, 60, 1]
    pred, labels, weight = cls_case('index labels, row weights')
    fused = ClassBalancedFocalLoss(class_counts=counts, loss_type=loss_type,
                                   impl='triton').to(DEVICE)
    torch_impl = ClassBalancedFocalLoss(class_counts=counts, loss_type=loss_type,
                                        impl='torch').to(DEVICE)
    loss, grad = loss_and_grad(fused, pred, labels, weight, avg_factor=20.0)
    ref_loss, ref_grad = loss_and_grad(torch_impl, pred, labels, weight, avg_factor=20.0)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(grad, ref_grad)


def test_ghmc_kernel_path_builds_no_torch_inputs(monkeypatch):
    # the PyTorch implementation's (N, C) target copy and weight layout are for it only
    def built(*args):
        raise AssertionError('the PyTorch inputs were built on the kernel path')

    monkeypatch.setattr(ClassificationInputs, 'torch_weight', property(built))
    pred, labels, weight = cls_case('index labels, row weights')
    one_hot, dense_weight = dense(pred, labels, weight)
    for args in ((labels, weight), (one_hot, dense_weight)):
        loss_and_grad(GHMCLoss(impl='triton').to(DEVICE), pred, *args)
    with pytest.raises(AssertionError, match='PyTorch inputs were built'):
        loss_and_grad(GHMCLoss(impl='torch'), pred, labels, weight)
