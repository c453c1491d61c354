"""Losses under autocast and with half-precision logits: fp32 statistics, finite results."""
import pytest
import torch
from mmdet.models.losses import GHMC

from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)

from ..conftest import make_cls_inputs, make_reg_inputs

LOSSES = [GHMCLoss, SigmoidFocalLoss,
          lambda: ClassBalancedFocalLoss(class_counts=[90, 30, 10, 5, 3, 2, 1])]


@pytest.mark.parametrize('make_loss', LOSSES)
def test_cpu_bf16_autocast(make_loss):
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 7)
    features = torch.randn(300, 16) * 4
    _, labels, weight = make_cls_inputs(num_anchors=300)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = layer(features)
        assert logits.dtype == torch.bfloat16
        loss = make_loss()(logits, labels, weight, avg_factor=20.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all() and layer.weight.grad.abs().sum() > 0


def test_ghmr_bf16_autocast():
    layer = torch.nn.Linear(8, 4)
    _, target, weight = make_reg_inputs(num_anchors=200)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = GHMRLoss()(layer(torch.randn(200, 8)), target, weight)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


def test_fp16_weights_beyond_fp16_range_stay_finite():
    # 300k easy negatives in the first bin and one hard one alone in the last:
    # its weight tot / 1 / 2 = 150,000 overflows fp16 (max 65,504).
    pred = torch.full((100_000, 3), -20.0, dtype=torch.float16)
    pred[0, 0] = 20.0
    labels = torch.full((100_000, ), 3)
    ours = GHMCLoss(momentum=0.0)
    pred32 = pred.float().requires_grad_()
    expected = ours(pred32, labels)
    expected.backward()
    half = pred.clone().requires_grad_()
    loss = ours(half, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(half.grad).all()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(half.grad.float(), pred32.grad, rtol=1e-3, atol=1e-8)
    # mmdet's GHMC builds the weights in the logits' dtype and overflows: an inf
    # loss, or, on torch < 2.2, an error at the fp16 write of the weight
    try:
        mmdet_loss = GHMC(bins=30, momentum=0.0)(pred.clone(), labels,
                                                 torch.ones(100_000, dtype=torch.float16))
    except RuntimeError as error:
        assert 'without overflow' in str(error)
    else:
        assert not torch.isfinite(mmdet_loss)
