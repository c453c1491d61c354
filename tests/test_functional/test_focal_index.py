"""The hand-written focal loss of index labels against the autograd reference."""
import pytest
import torch

from mmdet_ghm.functional import one_hot_labels, sigmoid_focal_loss
from mmdet_ghm.ops import focal_torch
from mmdet_ghm.ops.inputs import FocalCoefficients


def sigmoid_focal_index_loss(logits, labels, weight, gamma=2.0, alpha=0.25,
                             class_weight=None, pos_weight=None, reduce=True):
    """The PyTorch implementation of index labels, with the focal loss's own
    defaults (gamma 2, alpha 0.25)."""
    return focal_torch.sigmoid_focal_index_loss(
        logits, labels, weight, gamma, FocalCoefficients(alpha, class_weight, pos_weight),
        reduce)

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
