import pytest
import torch

from mmdet_ghm.functional import (effective_number_weights, focal_modulator,
                                  sigmoid_focal_loss)


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


def test_effective_number_weights_formula():
    counts = [1000, 100, 10, 1]
    beta = 0.99
    w = effective_number_weights(counts, beta)
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    expected = torch.tensor([r * 4 / sum(raw) for r in raw])
    assert torch.allclose(w, expected)
    assert torch.isclose(w.sum(), torch.tensor(4.0))
    assert (w[:-1] < w[1:]).all()  # rarer classes weigh more


def test_effective_number_limits():
    counts = [500, 50, 5]
    assert torch.allclose(effective_number_weights(counts, 0.0), torch.ones(3))
    inv_freq = torch.tensor([1 / n for n in counts])
    inv_freq = inv_freq * 3 / inv_freq.sum()
    assert torch.allclose(effective_number_weights(counts, 1 - 1e-9), inv_freq, rtol=1e-4)


@pytest.mark.parametrize('counts,beta,match', [
    ([10, 0, 3], 0.9, 'class indices \\[1\\]'),
    ([10, 3], 1.0, 'beta must be in'),
    ([10, -1], 0.9, 'non-negative integers'),
    ([10, 2.5], 0.9, 'non-negative integers'),
    ([], 0.9, 'non-empty'),
])
def test_effective_number_rejects_bad_input(counts, beta, match):
    with pytest.raises(ValueError, match=match):
        effective_number_weights(counts, beta)
