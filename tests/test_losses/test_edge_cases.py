"""Documented results for degenerate batches: finite, zero where nothing is learnt."""
import pytest
import torch

from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)

from ..helpers import BOTH_IMPLS, CLS_LOSSES, loss_and_grad, make_cls_inputs, make_reg_inputs


@pytest.mark.parametrize('make_loss', CLS_LOSSES.values())
def test_all_anchors_ignored_gives_zero(make_loss):
    pred, labels, _ = make_cls_inputs()
    loss, grad = loss_and_grad(make_loss(), pred, labels, torch.zeros(len(labels)),
                      avg_factor=1.0)
    assert loss.item() == 0
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize('make_loss', CLS_LOSSES.values())
def test_no_positives_is_finite_and_positive(make_loss):
    pred, _, weight = make_cls_inputs()
    labels = torch.full((pred.shape[0], ), pred.shape[1])
    loss, grad = loss_and_grad(make_loss(), pred, labels, weight, avg_factor=1.0)
    assert torch.isfinite(loss) and loss > 0  # negatives still teach background
    assert torch.isfinite(grad).all()


def test_single_element():
    pred = torch.tensor([[0.3]])
    # one valid element is alone in its bin: weight tot / 1 / 1 = 1, so GHM-C is BCE
    loss, _ = loss_and_grad(GHMCLoss(momentum=0.0), pred, torch.tensor([0]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred, torch.ones(1, 1))
    torch.testing.assert_close(loss, bce)
    loss, _ = loss_and_grad(GHMRLoss(momentum=0.0, loss_weight=1.0), pred, torch.tensor([[0.1]]))
    torch.testing.assert_close(loss, torch.sqrt(torch.tensor(0.2**2 + 0.02**2)) - 0.02)
    loss, _ = loss_and_grad(SigmoidFocalLoss(), pred, torch.tensor([1]))  # background
    assert torch.isfinite(loss) and loss > 0


EMPTY_LOSSES = {
    'GHMCLoss': lambda impl: GHMCLoss(impl=impl),
    'SigmoidFocalLoss': lambda impl: SigmoidFocalLoss(impl=impl),
    'ClassBalancedFocalLoss': lambda impl: ClassBalancedFocalLoss(
        class_counts=[50, 20, 5, 1, 8], impl=impl),
}


@pytest.mark.parametrize('name', EMPTY_LOSSES)
@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('targets', ['index', 'dense'])
@pytest.mark.parametrize('weight', [None, 'row', 'dense'])
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_empty_classification_batch(name, impl, targets, weight, reduction):
    # N = 0 anchors (an empty FPN level or an image without anchors)
    pred = torch.rand(0, 5)
    target = torch.randint(0, 6, (0, )) if targets == 'index' else torch.rand(0, 5)
    weight = {None: None, 'row': torch.ones(0), 'dense': torch.ones(0, 5)}[weight]
    loss, grad = loss_and_grad(EMPTY_LOSSES[name](impl), pred, target, weight,
                      reduction_override=reduction)
    assert loss.shape == ((0, 5) if reduction == 'none' else ())
    if reduction != 'none':
        assert loss.dtype == torch.float32 and loss.item() == 0
    assert grad.shape == (0, 5)


@pytest.mark.parametrize('make_loss', [
    lambda: SigmoidFocalLoss(),
    lambda: ClassBalancedFocalLoss(class_counts=[50, 20, 5, 1, 8, 9, 10]),
    lambda: ClassBalancedFocalLoss(class_counts=[50, 20, 5, 1, 8, 9, 10],
                                   loss_type='sigmoid'),
])
def test_avg_factor_with_sum_raises_as_in_mmdet(make_loss):
    pred, labels, weight = make_cls_inputs()
    with pytest.raises(ValueError, match="avg_factor can not be used with reduction='sum'"):
        make_loss()(pred, labels, weight, avg_factor=10.0, reduction_override='sum')
    # 'none' ignores it, as mmdet's weight_reduce_loss does
    assert torch.equal(
        make_loss()(pred, labels, weight, avg_factor=10.0, reduction_override='none'),
        make_loss()(pred, labels, weight, reduction_override='none'))


@pytest.mark.parametrize('make_loss, make_inputs', [
    (lambda: GHMCLoss(momentum=0.0), make_cls_inputs),
    (lambda: GHMRLoss(momentum=0.0), make_reg_inputs)])
def test_ghm_losses_ignore_avg_factor(make_loss, make_inputs):
    # GHM normalises by tot, the number of valid elements, whatever the reduction
    inputs = make_inputs()
    plain = make_loss()(*inputs, reduction_override='sum')
    with_avg = make_loss()(*inputs, avg_factor=10.0, reduction_override='sum')
    assert torch.equal(plain, with_avg)


@pytest.mark.parametrize('make_loss', CLS_LOSSES.values())
def test_flattened_weights_as_mmdet_heads_pass_them(make_loss):
    # FSAF passes (N * C,) label weights; mmdet's sigmoid losses view them as (N, C)
    pred, labels, _ = make_cls_inputs()
    weight = torch.rand(pred.shape)
    expected = make_loss()(pred, labels, weight, avg_factor=5.0)
    torch.testing.assert_close(make_loss()(pred, labels, weight.flatten(), avg_factor=5.0),
                               expected, rtol=0, atol=0)
