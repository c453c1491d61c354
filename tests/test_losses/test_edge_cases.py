"""Documented results for degenerate batches: finite, zero where nothing is learnt."""
import pytest
import torch

from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)

from ..conftest import make_cls_inputs, make_reg_inputs

CLS_LOSSES = [
    lambda: GHMCLoss(),
    lambda: SigmoidFocalLoss(),
    lambda: ClassBalancedFocalLoss(class_counts=[50, 20, 5, 1, 8, 9, 10]),
]


def _run(loss_fn, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_()
    loss = loss_fn(pred, *args, **kwargs)
    loss.backward()
    return loss.detach(), pred.grad


@pytest.mark.parametrize('make_loss', CLS_LOSSES)
def test_all_anchors_ignored_gives_zero(make_loss):
    pred, labels, _ = make_cls_inputs()
    loss, grad = _run(make_loss(), pred, labels, torch.zeros(len(labels)),
                      avg_factor=1.0)
    assert loss.item() == 0
    assert torch.equal(grad, torch.zeros_like(grad))


def test_ghmc_all_ignored_keeps_ema():
    loss_fn = GHMCLoss(momentum=0.75)
    pred, labels, weight = make_cls_inputs()
    loss_fn(pred, labels, weight)
    acc = loss_fn.density.acc_sum.clone()
    loss_fn(pred, labels, torch.zeros(len(labels)))
    assert torch.equal(loss_fn.density.acc_sum, acc)


@pytest.mark.parametrize('make_loss', CLS_LOSSES)
def test_no_positives_is_finite_and_positive(make_loss):
    pred, _, weight = make_cls_inputs()
    labels = torch.full((pred.shape[0], ), pred.shape[1])
    loss, grad = _run(make_loss(), pred, labels, weight, avg_factor=1.0)
    assert torch.isfinite(loss) and loss > 0  # negatives still teach background
    assert torch.isfinite(grad).all()


def test_ghmr_no_positives_gives_zero():
    pred, target, _ = make_reg_inputs()
    loss, grad = _run(GHMRLoss(), pred, target, torch.zeros_like(pred))
    assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))
    loss, grad = _run(GHMRLoss(), pred[:0], target[:0], torch.zeros(0, 4))
    assert loss.item() == 0 and grad.shape == (0, 4)


def test_single_element():
    pred = torch.tensor([[0.3]])
    # one valid element is alone in its bin: weight tot / 1 / 1 = 1, so GHM-C is BCE
    loss, _ = _run(GHMCLoss(momentum=0.0), pred, torch.tensor([0]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, torch.ones(1, 1))
    torch.testing.assert_close(loss, bce)
    loss, _ = _run(GHMRLoss(momentum=0.0, loss_weight=1.0), pred, torch.tensor([[0.1]]))
    torch.testing.assert_close(loss, torch.sqrt(torch.tensor(0.2**2 + 0.02**2)) - 0.02)
    loss, _ = _run(SigmoidFocalLoss(), pred, torch.tensor([1]))  # background
    assert torch.isfinite(loss) and loss > 0


def test_momentum_zero_mean_weight_is_one():
    pred, labels, weight = make_cls_inputs(num_anchors=500)
    loss_fn = GHMCLoss(bins=30, momentum=0.0, reduction='none')
    pred = pred.clone()
    # with a BCE of 1 everywhere the 'none' output is the weight itself
    x = pred.float()
    y = (labels[:, None] == torch.arange(pred.shape[1])).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction='none')
    w = loss_fn(pred, labels, weight) / bce
    valid = weight[:, None].expand_as(pred) > 0
    assert w[valid].std() > 0.1  # the weights do differ between bins
    assert torch.equal(w[~valid], torch.zeros_like(w[~valid]))
    # sum over valid elements = sum over non-empty bins of count * tot / count / n
    torch.testing.assert_close(w[valid].mean(), torch.tensor(1.0))
