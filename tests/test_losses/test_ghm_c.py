"""GHMCLoss: equal to mmdet's GHMC, its weights, invariances, edge cases, gradients."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmdet.models.losses import GHMC
from torch.autograd import gradcheck

from mmdet_ghm.functional import ghmc_loss, one_hot_labels
from mmdet_ghm.losses import GHMCLoss

from ..helpers import (BOTH_IMPLS, SETTINGS, float64_cls_inputs, loss_and_grad,
                       make_cls_inputs, ramp_like)


@pytest.mark.parametrize('bins,momentum', [(30, 0.75), (10, 0.0), (5, 0.3)])
def test_ghmc_equals_mmdet_over_successive_calls(bins, momentum):
    ours = GHMCLoss(bins=bins, momentum=momentum, loss_weight=2.0)
    ref = GHMC(bins=bins, momentum=momentum, use_sigmoid=True, loss_weight=2.0)
    for call in range(4):
        pred, labels, weight = make_cls_inputs(num_anchors=300 + 50 * call,
                                               seed=call, scale=1.0 + call)
        loss, grad = loss_and_grad(ours, pred, labels, weight, grad_out=ramp_like)
        ref_loss, ref_grad = loss_and_grad(ref, pred, labels, weight, grad_out=ramp_like)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
        if momentum > 0:
            torch.testing.assert_close(ours.density.acc_sum, ref.acc_sum)


def test_ghmc_one_hot_targets_equal_index_labels():
    pred, labels, weight = make_cls_inputs()
    a = GHMCLoss()(pred, labels, weight)
    b = GHMCLoss()(pred, one_hot_labels(labels, pred.shape[1]),
                   weight[:, None].expand_as(pred))
    torch.testing.assert_close(a, b)


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


def test_ghmc_all_ignored_keeps_ema():
    loss_fn = GHMCLoss(momentum=0.75)
    pred, labels, weight = make_cls_inputs()
    loss_fn(pred, labels, weight)
    acc = loss_fn.density.acc_sum.clone()
    loss_fn(pred, labels, torch.zeros(len(labels)))
    assert torch.equal(loss_fn.density.acc_sum, acc)


@st.composite
def cls_batches(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    num_anchors = draw(st.integers(1, 120))
    num_classes = draw(st.integers(1, 9))
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(num_anchors, num_classes, generator=gen) * draw(st.floats(0.1, 8))
    labels = torch.randint(0, num_classes + 1, (num_anchors, ), generator=gen)
    weight = (torch.rand(num_anchors, generator=gen) > draw(st.floats(0, 0.9))).float()
    return pred, labels, weight


@SETTINGS
@given(batch=cls_batches(), data=st.data())
def test_ghmc_is_invariant_to_permuting_elements(batch, data):
    pred, labels, weight = batch
    perm = torch.tensor(data.draw(st.permutations(range(len(labels)))))
    a, b = GHMCLoss(momentum=0.75), GHMCLoss(momentum=0.75)
    for _ in range(2):  # the EMA too
        elementwise = a(pred, labels, weight, reduction_override='none')
        permuted = b(pred[perm], labels[perm], weight[perm], reduction_override='none')
        torch.testing.assert_close(permuted, elementwise[perm])
        torch.testing.assert_close(a.density.acc_sum, b.density.acc_sum)


@SETTINGS
@given(batch=cls_batches(), cuts=st.lists(st.integers(0, 120), max_size=4))
def test_ghmc_does_not_depend_on_the_order_of_anchor_blocks(batch, cuts):
    # a property of the loss (GHMRetinaHead's batch scope relies on it): the
    # same anchors cut into blocks and concatenated in another order give the
    # same loss and the same EMA.
    pred, labels, weight = batch
    bounds = sorted({0, len(labels), *[min(c, len(labels)) for c in cuts]})
    parts = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])][::-1]
    whole, pooled = GHMCLoss(), GHMCLoss()
    expected = whole(pred, labels, weight)
    got = pooled(torch.cat([pred[p] for p in parts]), torch.cat([labels[p] for p in parts]),
                 torch.cat([weight[p] for p in parts]))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(pooled.density.acc_sum, whole.density.acc_sum)


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


def test_gradcheck_ghmc():
    loss = GHMCLoss(bins=10, momentum=0.75)
    pred, labels, weight = float64_cls_inputs()
    loss(pred.detach(), labels, weight)  # fill the EMA
    loss.eval()  # the EMA is used but not updated: a fixed function of pred
    assert gradcheck(lambda p: loss(p, labels, weight), (pred, ))


EPS = torch.finfo(torch.float32).eps


def away_from_bin_edges(pred, dense_target, bins):
    """The logits, those whose g = |sigmoid(x) - y| lies within 1e-3 of a bin's
    width from a bin edge moved by 0.01 until none does: the two sides compute
    the sigmoid with different roundings, which must not put an element in the
    next bin (its weight would change by far more than a rounding)."""
    x = pred.double()
    for _ in range(20):
        frac = ((x.sigmoid() - dense_target.double()).abs() * bins).frac()
        near = (frac < 1e-3) | (frac > 1 - 1e-3)
        x = torch.where(near, x + 0.01, x)
    return x.to(pred.dtype)


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('targets', ['index labels, row weights', 'soft, dense weights'])
def test_ghmc_equals_the_functional_reference(impl, targets):
    loss = GHMCLoss(impl=impl)  # bins 30, momentum 0.75
    acc_sum = torch.zeros(30)
    for call in range(3):  # successive calls: the EMA
        pred, labels, weight = make_cls_inputs(num_anchors=500, seed=call)
        target = dense = one_hot_labels(labels, pred.shape[1])
        dense_weight = weight[:, None]
        if targets == 'index labels, row weights':
            target = labels
        else:
            gen = torch.Generator().manual_seed(call)
            target = dense = dense * torch.rand(dense.shape, generator=gen)
            weight = dense_weight = torch.rand(dense.shape, generator=gen) * (
                torch.rand(dense.shape, generator=gen) > 0.1)
        pred = away_from_bin_edges(pred, dense, 30)
        value, grad = loss_and_grad(loss, pred, target, weight)
        x = pred.clone().requires_grad_()
        ref, acc_sum = ghmc_loss(x, dense, dense_weight, acc_sum, bins=30, momentum=0.75)
        ref.backward()
        assert torch.equal(loss.density.acc_sum, acc_sum)  # the same counts
        # sums of 3500 positive terms in two orders (pairwise: log2(n) eps each)
        torch.testing.assert_close(value, ref.detach(), rtol=32 * EPS, atol=0)
        # a few roundings per element; p - y cancels near y, to eps of the weight
        torch.testing.assert_close(grad, x.grad, rtol=8 * EPS,
                                   atol=4 * EPS * x.grad.abs().max().item())
