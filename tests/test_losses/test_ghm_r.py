"""GHMRLoss: equal to mmdet's GHMR and to the formula by hand, its hand-written ASL1
backward and CPU row picking, invariances, edge cases, bad inputs, gradients.

The backward must round exactly as autograd through ``sqrt(d * d + mu^2) -
mu`` did (the toy training figures of the README were measured with that),
and picking the weighted rows must change nothing but the order of a sum.
"""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmdet.models.losses import GHMR
from torch.autograd import gradcheck

from mmdet_ghm.functional import ghmr_loss
from mmdet_ghm.losses import GHMRLoss, ghm_r
from mmdet_ghm.ops import inputs
from mmdet_ghm.ops.asl1_torch import asl1_terms, weighted_asl1

from ..helpers import (BOTH_IMPLS, SETTINGS, loss_and_grad, make_reg_inputs,
                       ramp_like)


@pytest.mark.parametrize('bins,momentum,mu', [(10, 0.7, 0.02), (10, 0.0, 0.02),
                                              (7, 0.5, 0.1)])
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_ghmr_equals_mmdet_over_successive_calls(bins, momentum, mu, reduction):
    ours = GHMRLoss(mu=mu, bins=bins, momentum=momentum, loss_weight=10.0)
    ref = GHMR(mu=mu, bins=bins, momentum=momentum, loss_weight=10.0)
    # mmdet's GHMR raises on 'sum' (it passes avg_factor=tot): sum its 'none'
    ref_reduction = 'none' if reduction == 'sum' else reduction

    def reference(*args):
        loss = ref(*args, reduction_override=ref_reduction)
        return loss.sum() if reduction == 'sum' else loss

    for call in range(4):
        pred, target, weight = make_reg_inputs(num_anchors=80 + 20 * call, seed=call)
        loss, grad = loss_and_grad(ours, pred, target, weight, grad_out=ramp_like,
                                   reduction_override=reduction)
        ref_loss, ref_grad = loss_and_grad(reference, pred, target, weight, grad_out=ramp_like)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
        if momentum > 0:
            torch.testing.assert_close(ours.density.acc_sum, ref.acc_sum)


# mu = 0.5, no EMA; d = pred - target, g = |d| / sqrt(d^2 + mu^2); the last
# element is ignored. Each valid element gets tot / count(its bin) / n, n being
# the number of NON-empty bins.
GHMR_BY_HAND = {
    # g = 0.196, 0.371 | 0.986, 0.992: two per bin, tot 4, n 2 -> 4 / 2 / 2
    'two even bins': (2, [0.1, 0.2, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 0.0]),
    # g = 0.196 | 0.970, 0.986, 0.992: 4 / 1 / 2 and 4 / 3 / 2
    'skewed': (2, [0.1, 2.0, 3.0, 4.0, 5.0], [2.0, 2 / 3, 2 / 3, 2 / 3, 0.0]),
    # three bins, the middle one empty: n = 2, not 3
    'an empty bin': (3, [0.1, 0.05, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 0.0]),
}


@pytest.mark.parametrize('case', GHMR_BY_HAND)
@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_ghmr_by_hand(case, reduction):
    bins, d, density_weight = GHMR_BY_HAND[case]
    pred, density_weight = torch.tensor([d]), torch.tensor([density_weight])
    label_weight = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    elementwise = (torch.sqrt(pred**2 + 0.25) - 0.5) * density_weight
    expected = {'none': elementwise, 'sum': elementwise.sum(),
                'mean': elementwise.sum() / 4}[reduction]
    loss = GHMRLoss(mu=0.5, bins=bins, momentum=0.0, loss_weight=1.0)
    torch.testing.assert_close(loss(pred, torch.zeros_like(pred), label_weight,
                                    reduction_override=reduction), expected)


MU = 0.02


EPS = torch.finfo(torch.float32).eps


def deltas(rows, cols=4, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, cols, generator=gen, dtype=dtype) * 0.3,
            torch.randn(rows, cols, generator=gen, dtype=dtype) * 0.3,
            torch.rand(rows, cols, generator=gen, dtype=dtype))


@pytest.mark.parametrize('reduce', [True, False])
def test_backward_rounds_as_autograd(reduce):
    pred, target, weight = deltas(3000)
    grad_out = torch.tensor(10.0) / 2991 if reduce else torch.rand(3000, 4)
    x = pred.clone().requires_grad_()
    diff = x - target
    reference = (torch.sqrt(diff * diff + MU * MU) - MU) * weight
    (reference.sum() if reduce else reference).backward(grad_out)
    y = pred.clone().requires_grad_()
    d, root = asl1_terms(y, target, torch.float32, MU)
    ours = weighted_asl1(y, d, root, weight, MU, reduce)
    ours.backward(grad_out)
    assert torch.equal(ours, reference.sum() if reduce else reference)
    assert torch.equal(y.grad, x.grad)  # bitwise, not close


def run(loss, pred, target, weight, reduction, calls=2):
    """Loss, gradient and EMA of the last of ``calls`` calls."""
    for _ in range(calls):
        x = pred.detach().requires_grad_()
        value = loss(x, target, weight, reduction_override=reduction)
        value.backward(torch.ones_like(value))
    return value.detach(), x.grad, loss.density.acc_sum.clone()


@pytest.mark.parametrize('weight_kind', ['elements', 'rows', 'mixed', 'none_valid'])
@pytest.mark.parametrize('reduction', ['mean', 'none'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_picked_rows_equal_all_rows(monkeypatch, weight_kind, reduction, dtype):
    pred, target, _ = deltas(500, dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    positive = torch.rand(500, generator=gen) < 0.05
    weight = {
        'elements': positive[:, None].expand(-1, 4).to(dtype),  # as mmdet passes them
        'rows': positive.to(dtype) * 2,  # (N,)
        # rows whose weights differ by column, some 0 within a weighted row
        'mixed': positive[:, None] * torch.tensor([1.0, 0.0, 0.5, 3.0]).to(dtype),
        'none_valid': torch.zeros(500, 4, dtype=dtype),
    }[weight_kind]
    picked = run(GHMRLoss(impl='torch'), pred, target, weight, reduction)
    monkeypatch.setattr(ghm_r, 'selects_rows', lambda _: False)
    every = run(GHMRLoss(impl='torch'), pred, target, weight, reduction)
    # the elementwise values and gradients are the same ops on the same
    # numbers; only the sum of 'mean' adds in another order
    tol = 2000 * EPS if reduction == 'mean' else 0
    torch.testing.assert_close(picked[0], every[0], rtol=tol, atol=0)
    assert torch.equal(picked[1], every[1])
    assert torch.equal(picked[2], every[2])
    assert picked[1].dtype == dtype and picked[1].shape == pred.shape


def test_rows_with_weight():
    weight = torch.zeros(6, 3)
    weight[1, 2] = 1e-30
    weight[4] = torch.tensor([0.0, 2.0, 0.0])
    assert inputs.rows_with_weight(weight).tolist() == [1, 4]
    assert inputs.rows_with_weight(torch.ones(5)[:, None].expand(5, 4)).tolist() == [
        0, 1, 2, 3, 4]


def test_cpu_picks_rows_only_with_weights(monkeypatch):
    calls = []
    real = inputs.rows_with_weight
    monkeypatch.setattr(inputs, 'rows_with_weight',
                        lambda weight: calls.append(weight.shape) or real(weight))
    pred, target, weight = deltas(50)
    GHMRLoss(impl='torch')(pred, target)
    assert calls == []
    GHMRLoss(impl='torch')(pred, target, weight)
    assert calls == [(50, 4)]


def test_ghmr_no_positives_gives_zero():
    pred, target, _ = make_reg_inputs()
    loss, grad = loss_and_grad(GHMRLoss(), pred, target, torch.zeros_like(pred))
    assert loss.item() == 0 and torch.equal(grad, torch.zeros_like(grad))
    loss, grad = loss_and_grad(GHMRLoss(), pred[:0], target[:0], torch.zeros(0, 4))
    assert loss.item() == 0 and grad.shape == (0, 4)


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('weight', [None, 'row', 'dense'])
@pytest.mark.parametrize('reduction', ['mean', 'sum'])
def test_empty_regression_batch(impl, weight, reduction):
    pred, target = torch.rand(0, 4), torch.rand(0, 4)
    weight = {None: None, 'row': torch.ones(0), 'dense': torch.ones(0, 4)}[weight]
    loss, grad = loss_and_grad(GHMRLoss(impl=impl), pred, target, weight,
                      reduction_override=reduction)
    assert loss.item() == 0 and grad.shape == (0, 4)


def test_ghmr_takes_any_leading_shape():
    # FreeAnchor passes (objects, bag, 4) deltas
    pred, target, weight = make_reg_inputs(num_anchors=60)
    flat = GHMRLoss(momentum=0.0)(pred, target, weight, reduction_override='none')
    for w in (weight.view(3, 20, 4), weight[:, 0].reshape(3, 20)):
        bags = GHMRLoss(momentum=0.0)(pred.view(3, 20, 4), target.view(3, 20, 4), w,
                                      reduction_override='none')
        assert bags.shape == (3, 20, 4)
        torch.testing.assert_close(bags.view(60, 4), flat, rtol=0, atol=0)


ROWS = 6  # of the bad inputs below


def six_deltas():
    return torch.randn(ROWS, 4)


REG_CASES = [
    ('target of another shape', lambda: (six_deltas(), torch.zeros(ROWS, 5)), ValueError,
     r'`pred` must be float and `target` of the same shape'),
    ('1-d deltas', lambda: (torch.zeros(ROWS * 4), torch.zeros(ROWS * 4)), ValueError,
     r'`pred` must be \(N, 4\) or \(N, 4k\) deltas'),
    ('no delta per row', lambda: (torch.zeros(ROWS, 0), torch.zeros(ROWS, 0)), ValueError,
     r'`pred` must be \(N, 4\) or \(N, 4k\) deltas, got shape \(6, 0\)'),
    ('weight of another shape', lambda: (six_deltas(), six_deltas(), torch.ones(ROWS, 2)), ValueError,
     r'`weight` must have shape \(N,\) = \(6,\) or \(N, C\) = \(6, 4\)'),
    ('NaN delta', lambda: (six_deltas() / 0 * 0, six_deltas()), RuntimeError,
     r'`pred` contains NaN or Inf'),
    ('Inf target', lambda: (six_deltas(), six_deltas() / 0), RuntimeError,
     r'`target` contains NaN or Inf'),
    ('negative weight', lambda: (six_deltas(), six_deltas(), -torch.ones(ROWS, 4)), RuntimeError,
     r'`weight` must be finite and >= 0.0'),
]


@pytest.mark.parametrize('case,make_args,error,message', REG_CASES,
                         ids=[c[0] for c in REG_CASES])
def test_regression_bad_input(case, make_args, error, message):
    with pytest.raises(error, match=f'^GHMRLoss: {message}'):
        GHMRLoss()(*make_args())


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), num=st.integers(1, 80), data=st.data())
def test_ghmr_is_invariant_to_permuting_elements(seed, num, data):
    gen = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(num, 4, generator=gen), torch.randn(num, 4, generator=gen)
    weight = (torch.rand(num, 1, generator=gen) > 0.5).float().expand(num, 4)
    perm = torch.tensor(data.draw(st.permutations(range(num))))
    a = GHMRLoss(momentum=0.0)(pred, target, weight, reduction_override='none')
    b = GHMRLoss(momentum=0.0)(pred[perm], target[perm], weight[perm],
                               reduction_override='none')
    torch.testing.assert_close(b, a[perm])


def test_ghmr_bf16_autocast():
    layer = torch.nn.Linear(8, 4)
    _, target, weight = make_reg_inputs(num_anchors=200)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = GHMRLoss()(layer(torch.randn(200, 8)), target, weight)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


def test_gradcheck_ghmr():
    loss = GHMRLoss(momentum=0.7)
    pred, target, weight = make_reg_inputs(num_anchors=10, seed=2, pos_frac=0.6,
                                           dtype=torch.float64)
    loss(pred, target, weight)
    loss.eval()
    assert gradcheck(lambda p: loss(p, target, weight),
                     (pred.requires_grad_(), ))


def away_from_bin_edges(pred, target, bins, mu):
    """The deltas, those whose g = |d| / sqrt(d^2 + mu^2) lies within 1e-3 of a
    bin's width from a bin edge moved by 1e-3: a rounding of either side must
    not put an element in the next bin."""
    x = pred.double()
    for _ in range(20):
        d = x - target.double()
        frac = (d.abs() / torch.sqrt(d * d + mu * mu) * bins).frac()
        near = (frac < 1e-3) | (frac > 1 - 1e-3)
        x = torch.where(near, x + 1e-3, x)
    return x.to(pred.dtype)


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('weights', ['per element', 'per row'])
def test_ghmr_equals_the_functional_reference(impl, weights):
    loss = GHMRLoss(impl=impl, loss_weight=1.0)  # mu 0.02, bins 10, momentum 0.7
    acc_sum = torch.zeros(10)
    for call in range(3):  # successive calls: the EMA
        pred, target, weight = make_reg_inputs(num_anchors=400, seed=call)
        if weights == 'per element':
            gen = torch.Generator().manual_seed(call)
            weight = weight * torch.rand(weight.shape, generator=gen)
        dense_weight, weight = weight, weight if weights == 'per element' else weight[:, 0]
        pred = away_from_bin_edges(pred, target, 10, 0.02)
        value, grad = loss_and_grad(loss, pred, target, weight)
        x = pred.clone().requires_grad_()
        ref, acc_sum = ghmr_loss(x, target, dense_weight, acc_sum, mu=0.02, bins=10,
                                 momentum=0.7)
        ref.backward()
        assert torch.equal(loss.density.acc_sum, acc_sum)  # the same counts
        # sums of at most 1600 positive terms in two orders (log2(n) eps each)
        torch.testing.assert_close(value, ref.detach(), rtol=32 * EPS, atol=0)
        # d / root: a few roundings per element
        torch.testing.assert_close(grad, x.grad, rtol=8 * EPS, atol=0)
