"""Our losses equal mmdet 3.3.0's GHMC, GHMR and (CPU) FocalLoss."""
import pytest
import torch
from mmdet.models.losses import GHMC, GHMR, FocalLoss

from mmdet_ghm.losses import GHMCLoss, GHMRLoss, SigmoidFocalLoss

from ..conftest import make_cls_inputs, make_reg_inputs


def _loss_and_grad(loss_fn, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_()
    loss = loss_fn(pred, *args, **kwargs)
    loss.backward()
    return loss.detach(), pred.grad


@pytest.mark.parametrize('bins,momentum', [(30, 0.75), (10, 0.0), (5, 0.3)])
def test_ghmc_equals_mmdet_over_successive_calls(bins, momentum):
    ours = GHMCLoss(bins=bins, momentum=momentum, loss_weight=2.0)
    ref = GHMC(bins=bins, momentum=momentum, use_sigmoid=True, loss_weight=2.0)
    for call in range(4):
        pred, labels, weight = make_cls_inputs(num_anchors=300 + 50 * call,
                                               seed=call, scale=1.0 + call)
        loss, grad = _loss_and_grad(ours, pred, labels, weight)
        ref_loss, ref_grad = _loss_and_grad(ref, pred, labels, weight)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
        if momentum > 0:
            torch.testing.assert_close(ours.density.acc_sum, ref.acc_sum)


def test_ghmc_one_hot_targets_equal_index_labels():
    pred, labels, weight = make_cls_inputs()
    one_hot = torch.zeros_like(pred)
    fg = labels < pred.shape[1]
    one_hot[fg, labels[fg]] = 1
    a = GHMCLoss()(pred, labels, weight)
    b = GHMCLoss()(pred, one_hot, weight[:, None].expand_as(pred))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('bins,momentum,mu', [(10, 0.7, 0.02), (10, 0.0, 0.02),
                                              (7, 0.5, 0.1)])
def test_ghmr_equals_mmdet_over_successive_calls(bins, momentum, mu):
    ours = GHMRLoss(mu=mu, bins=bins, momentum=momentum, loss_weight=10.0)
    ref = GHMR(mu=mu, bins=bins, momentum=momentum, loss_weight=10.0)
    for call in range(4):
        pred, target, weight = make_reg_inputs(num_anchors=80 + 20 * call, seed=call)
        loss, grad = _loss_and_grad(ours, pred, target, weight)
        ref_loss, ref_grad = _loss_and_grad(ref, pred, target, weight)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
        if momentum > 0:
            torch.testing.assert_close(ours.density.acc_sum, ref.acc_sum)


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.5), (0.0, 0.25)])
@pytest.mark.parametrize('reduction,avg_factor', [('mean', 37.0), ('mean', None),
                                                  ('sum', None), ('none', None)])
def test_focal_equals_mmdet_cpu(gamma, alpha, reduction, avg_factor):
    ours = SigmoidFocalLoss(gamma=gamma, alpha=alpha, reduction=reduction,
                            loss_weight=1.5)
    ref = FocalLoss(use_sigmoid=True, gamma=gamma, alpha=alpha, reduction=reduction,
                    loss_weight=1.5)
    pred, labels, weight = make_cls_inputs(seed=3)
    loss, grad = _loss_and_grad(lambda p: ours(p, labels, weight, avg_factor).sum(), pred)
    ref_loss, ref_grad = _loss_and_grad(
        lambda p: ref(p, labels, weight, avg_factor).sum(), pred)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
