"""SigmoidFocalLoss: equal to mmdet's FocalLoss, its log-space modulator, the
hand-written loss of index labels against the autograd reference, gradients."""
import pytest
import torch
from mmdet.models.losses import FocalLoss
from torch.autograd import gradcheck

from mmdet_ghm.functional import focal_modulator, one_hot_labels, sigmoid_focal_loss
from mmdet_ghm.losses import SigmoidFocalLoss
from mmdet_ghm.ops import focal_torch
from mmdet_ghm.ops.inputs import FocalCoefficients

from ..helpers import float64_cls_inputs, loss_and_grad, make_cls_inputs, ramp_like


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.25)])
@pytest.mark.parametrize('reduction,avg_factor', [('mean', 37.0), ('mean', None),
                                                  ('sum', None), ('none', None)])
def test_focal_equals_mmdet_cpu(gamma, alpha, reduction, avg_factor):
    ours = SigmoidFocalLoss(gamma=gamma, alpha=alpha, reduction=reduction,
                            loss_weight=1.5)
    ref = FocalLoss(use_sigmoid=True, gamma=gamma, alpha=alpha, reduction=reduction,
                    loss_weight=1.5)
    pred, labels, weight = make_cls_inputs(seed=3)
    loss, grad = loss_and_grad(lambda p: ours(p, labels, weight, avg_factor).sum(), pred,
                               grad_out=ramp_like)
    ref_loss, ref_grad = loss_and_grad(
        lambda p: ref(p, labels, weight, avg_factor).sum(), pred, grad_out=ramp_like)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize('gamma', [0.0, 0.25, 0.5, 2.0])
def test_modulator_equals_pow_form(gamma):
    x = torch.randn(50, 4, dtype=torch.float64) * 4
    y = (torch.rand(50, 4, dtype=torch.float64) > 0.7).double()
    p = x.sigmoid()
    pow_form = ((1 - p) * y + p * (1 - y)).pow(gamma)
    assert torch.allclose(focal_modulator(x, y, gamma), pow_form)
    assert torch.allclose(focal_modulator(x, y, gamma, binary_targets=True), pow_form)


def test_modulator_soft_targets():
    x = torch.randn(30, dtype=torch.float64)
    y = torch.rand(30, dtype=torch.float64)
    p = x.sigmoid()
    expected = (y * (1 - p) + (1 - y) * p).pow(1.5)
    assert torch.allclose(focal_modulator(x, y, 1.5), expected)


@pytest.mark.parametrize('gamma', [0.2, 0.5, 2.0])
def test_gradients_finite_for_extreme_logits(gamma):
    x = torch.tensor([[-100.0, 100.0, -100.0, 100.0, 0.0]], requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]])
    loss = sigmoid_focal_loss(x, y, gamma=gamma, alpha=0.25)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(x.grad).all()
    # the pow form of the modulator has a NaN gradient at p_t = 1 for gamma < 1
    p = x.detach().clone().requires_grad_().sigmoid()
    p.retain_grad()
    naive = ((1 - p) * y + p * (1 - y)).pow(gamma)
    naive.sum().backward()
    assert torch.isfinite(p.grad).all() == (gamma >= 1)


def test_alpha_class_weight_pos_weight():
    x = torch.randn(20, 3, dtype=torch.float64)
    y = (torch.rand(20, 3) > 0.5).double()
    base = sigmoid_focal_loss(x, y, gamma=2.0, alpha=None)
    alpha = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    with_alpha = sigmoid_focal_loss(x, y, gamma=2.0, alpha=alpha)
    assert torch.allclose(with_alpha, base * (alpha * y + (1 - alpha) * (1 - y)))
    cw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert torch.allclose(sigmoid_focal_loss(x, y, 2.0, None, class_weight=cw), base * cw)
    pw = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    with_pw = sigmoid_focal_loss(x, y, 2.0, None, pos_weight=pw)
    expected = base * (y * pw + (1 - y))  # pos_weight scales the y = 1 term only
    assert torch.allclose(with_pw, expected)


def sigmoid_focal_index_loss(logits, labels, weight, gamma=2.0, alpha=0.25,
                             class_weight=None, pos_weight=None, reduce=True):
    """The PyTorch implementation of index labels, with the focal loss's own
    defaults (gamma 2, alpha 0.25); (N, 1) weights are row weights."""
    row_weight = weight is not None and weight.shape[1] == 1
    return focal_torch.sigmoid_focal_index_loss(
        logits, labels, weight, row_weight, gamma,
        FocalCoefficients(alpha, class_weight, pos_weight), reduce)


CONFIGS = {
    'retinanet': dict(gamma=2.0, alpha=0.25),
    'gamma<1, no alpha': dict(gamma=0.3, alpha=None),
    'gamma 0': dict(gamma=0.0, alpha=0.25),
    'per-class everything': dict(gamma=1.5, alpha=torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5]),
                                 class_weight=torch.tensor([1.0, 2, 3, 4, 5]),
                                 pos_weight=torch.tensor([2.0, 1, 1, 0.5, 3])),
}


def inputs(dtype=torch.float64, n=60, c=5):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(n, c, generator=gen) * 4).to(dtype)
    x[0] = torch.tensor([-100.0, 100.0, -30.0, 30.0, 0.0])  # extreme logits stay finite
    labels = torch.randint(0, c + 1, (n, ), generator=gen)  # c = background
    labels[0] = 1
    weights = {None: None, 'row': torch.rand(n, 1, generator=gen, dtype=torch.float64),
               'dense': torch.rand(n, c, generator=gen, dtype=torch.float64)}
    return x, labels, weights


def reference(x, labels, weight, reduce, **config):
    loss = sigmoid_focal_loss(x, one_hot_labels(labels, x.shape[1]).to(x.dtype), **config)
    if weight is not None:
        loss = loss * weight
    return loss.sum() if reduce else loss


@pytest.mark.parametrize('config', CONFIGS)
@pytest.mark.parametrize('weight', [None, 'row', 'dense'])
@pytest.mark.parametrize('reduce', [True, False])
def test_equals_the_autograd_reference(config, weight, reduce):
    x, labels, weights = inputs()
    config = {k: v.double() if isinstance(v, torch.Tensor) else v
              for k, v in CONFIGS[config].items()}
    w = weights[weight]
    results = []
    for fn in (sigmoid_focal_index_loss, None):
        xi = x.clone().requires_grad_()
        out = (sigmoid_focal_index_loss(xi, labels, w, reduce=reduce, **config) if fn
               else reference(xi, labels, w, reduce, **config))
        # (rand_like takes no generator before torch 2.2)
        grad_out = torch.rand(out.shape, generator=torch.Generator().manual_seed(1),
                              dtype=out.dtype)
        out.backward(grad_out)
        results.append((out.detach(), xi.grad))
    (out, grad), (ref, ref_grad) = results
    assert torch.isfinite(grad).all()
    # fp64; the terms of logits of +-30 to 100 lose a few thousand ulps in either form
    tol = 4096 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)


def test_gradcheck():
    x, labels, weights = inputs(n=12)
    x = (x[:12] / 10).requires_grad_()  # away from the saturated extremes
    assert torch.autograd.gradcheck(
        lambda t: sigmoid_focal_index_loss(t, labels[:12], weights['row'][:12], 1.5, 0.25),
        (x, ))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_half_logits_compute_in_fp32(dtype):
    x, labels, _ = inputs()
    xi = x.to(dtype).requires_grad_()
    out = sigmoid_focal_index_loss(xi, labels, None)
    out.backward()
    assert out.dtype == torch.float32 and xi.grad.dtype == dtype
    ref = reference(x.to(dtype).double(), labels, None, True, gamma=2.0, alpha=0.25)
    # the sum of fp32 terms: relative error of a few fp32 ulps per term at most
    torch.testing.assert_close(out.double(), ref, rtol=64 * torch.finfo(torch.float32).eps,
                               atol=0)


def test_gradcheck_sigmoid_focal():
    loss = SigmoidFocalLoss(gamma=1.5, alpha=[0.2, 0.5, 0.7], class_weight=[1, 2, 3],
                            pos_weight=[2.0, 1.0, 0.5])
    pred, labels, weight = float64_cls_inputs()
    assert gradcheck(lambda p: loss(p, labels, weight, avg_factor=3.0), (pred, ))
    soft = torch.rand(pred.shape, dtype=torch.float64)
    assert gradcheck(lambda p: loss(p, soft), (pred, ))
