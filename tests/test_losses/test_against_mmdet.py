"""Our losses equal mmdet 3.3.0's GHMC, GHMR and (CPU) FocalLoss."""
import pytest
import torch
from mmdet.models.losses import GHMC, GHMR, FocalLoss

from mmdet_ghm.losses import GHMCLoss, GHMRLoss, SigmoidFocalLoss

from ..conftest import make_cls_inputs, make_reg_inputs


def _loss_and_grad(loss_fn, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_()
    loss = loss_fn(pred, *args, **kwargs)
    # a weighted sum, so that 'none' is compared element by element in the gradient
    loss.backward(torch.linspace(0.5, 1.5, loss.numel()).view(loss.shape))
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
        loss, grad = _loss_and_grad(ours, pred, target, weight, reduction_override=reduction)
        ref_loss, ref_grad = _loss_and_grad(reference, pred, target, weight)
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
