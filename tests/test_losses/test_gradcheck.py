"""torch.autograd.gradcheck of every loss in float64."""
import torch
from torch.autograd import gradcheck

from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)

from ..conftest import make_cls_inputs, make_reg_inputs


def _cls_inputs():
    pred, labels, weight = make_cls_inputs(num_anchors=12, num_classes=3, seed=5,
                                           pos_frac=0.4, dtype=torch.float64)
    return pred.requires_grad_(), labels, weight.double()


def test_gradcheck_ghmc():
    loss = GHMCLoss(bins=10, momentum=0.75)
    pred, labels, weight = _cls_inputs()
    loss(pred.detach(), labels, weight)  # fill the EMA
    loss.eval()  # the EMA is used but not updated: a fixed function of pred
    assert gradcheck(lambda p: loss(p, labels, weight), (pred, ))


def test_gradcheck_ghmr():
    loss = GHMRLoss(momentum=0.7)
    pred, target, weight = make_reg_inputs(num_anchors=10, seed=2, pos_frac=0.6,
                                           dtype=torch.float64)
    loss(pred, target, weight)
    loss.eval()
    assert gradcheck(lambda p: loss(p, target, weight),
                     (pred.requires_grad_(), ))


def test_gradcheck_sigmoid_focal():
    loss = SigmoidFocalLoss(gamma=1.5, alpha=[0.2, 0.5, 0.7], class_weight=[1, 2, 3],
                            pos_weight=[2.0, 1.0, 0.5])
    pred, labels, weight = _cls_inputs()
    assert gradcheck(lambda p: loss(p, labels, weight, avg_factor=3.0), (pred, ))
    soft = torch.rand(pred.shape, dtype=torch.float64)
    assert gradcheck(lambda p: loss(p, soft), (pred, ))


def test_gradcheck_class_balanced():
    pred, labels, weight = _cls_inputs()
    for loss_type in ('focal', 'sigmoid'):
        loss = ClassBalancedFocalLoss(class_counts=[100, 10, 1], loss_type=loss_type)
        assert gradcheck(lambda p: loss(p, labels, weight, avg_factor=4.0), (pred, ))
    softmax = ClassBalancedFocalLoss(class_counts=[100, 10, 1], loss_type='softmax',
                                     use_sigmoid=False)
    scores = torch.randn(12, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda p: softmax(p, labels, weight), (scores, ))
