"""GHM-R's hand-written ASL1 backward and its row picking on the CPU.

The backward must round exactly as autograd through ``sqrt(d * d + mu^2) -
mu`` did (the toy training figures of the README were measured with that),
and picking the weighted rows must change nothing but the order of a sum.
"""
import pytest
import torch

from mmdet_ghm.functional import asl1_root
from mmdet_ghm.losses import GHMRLoss, ghm_r
from mmdet_ghm.ops import inputs
from mmdet_ghm.ops.asl1_torch import weighted_asl1

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
    d = (y - target).detach()
    ours = weighted_asl1(y, d, asl1_root(d, MU), weight, MU, reduce)
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
