"""ClassBalancedFocalLoss: the effective-number weights, both weightings against the
authors' formula, the sigmoid and softmax variants, counts and checkpoints, gradients."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mmdet_ghm.functional import effective_number_weights, one_hot_labels
from mmdet_ghm.losses import ClassBalancedFocalLoss, SigmoidFocalLoss

from ..helpers import float64_cls_inputs, BOTH_IMPLS, make_cls_inputs


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


COUNTS = [500, 120, 40, 9, 3, 60, 1]


def test_columns_get_class_weights():
    pred, labels, weight = make_cls_inputs(seed=1)
    cb = ClassBalancedFocalLoss(class_counts=COUNTS, beta=0.999, gamma=0.5,
                                reduction='none')
    plain = SigmoidFocalLoss(gamma=0.5, alpha=None, reduction='none')
    w = effective_number_weights(COUNTS, 0.999)
    torch.testing.assert_close(cb(pred, labels, weight), plain(pred, labels, weight) * w)


def test_beta_zero_is_plain_focal():
    pred, labels, weight = make_cls_inputs(seed=2)
    cb = ClassBalancedFocalLoss(class_counts=COUNTS, beta=0.0, gamma=2.0)
    plain = SigmoidFocalLoss(gamma=2.0, alpha=None)
    torch.testing.assert_close(cb(pred, labels, weight, avg_factor=10.0),
                               plain(pred, labels, weight, avg_factor=10.0))


@pytest.mark.parametrize('impl', BOTH_IMPLS)
def test_sigmoid_variant_is_class_weighted_bce(impl):
    # the paper's class-balanced sigmoid CE: w_c * BCE, here averaged over N * C
    pred, labels, weight = make_cls_inputs(seed=2)
    sig = ClassBalancedFocalLoss(class_counts=COUNTS, loss_type='sigmoid', impl=impl)
    w = effective_number_weights(COUNTS, 0.999)
    expected = (F.binary_cross_entropy_with_logits(pred, one_hot_labels(labels, pred.shape[1]),
                                                   reduction='none')
                * w * weight[:, None]).mean()
    torch.testing.assert_close(sig(pred, labels, weight), expected)


def test_softmax_variant_weights_classes_and_background():
    gen = torch.Generator().manual_seed(0)
    num_classes = len(COUNTS)
    scores = torch.randn(100, num_classes + 1, generator=gen)
    labels = torch.randint(0, num_classes + 1, (100, ), generator=gen)
    loss = ClassBalancedFocalLoss(class_counts=COUNTS, loss_type='softmax',
                                  use_sigmoid=False, reduction='none')
    w = torch.cat([effective_number_weights(COUNTS, 0.999), torch.ones(1)])
    expected = F.cross_entropy(scores, labels, reduction='none') * w[labels]
    torch.testing.assert_close(loss(scores, labels), expected)


def test_counts_set_later_and_saved():
    loss = ClassBalancedFocalLoss()
    pred, labels, _ = make_cls_inputs()
    with pytest.raises(RuntimeError, match='no class counts'):
        loss(pred, labels)
    loss.set_class_counts(COUNTS)
    assert torch.isfinite(loss(pred, labels))
    assert torch.equal(loss.state_dict()['class_weight'],
                       effective_number_weights(COUNTS, 0.999))


def test_checkpoint_weights_load_into_a_loss_without_counts():
    trained = ClassBalancedFocalLoss(class_counts=COUNTS)
    fresh = ClassBalancedFocalLoss()
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.class_weight, trained.class_weight)
    pred, labels, _ = make_cls_inputs()
    torch.testing.assert_close(fresh(pred, labels), trained(pred, labels))


@pytest.mark.parametrize('kwargs,match', [
    (dict(class_counts=[3, 0, 2]), 'class indices \\[1\\]'),
    (dict(loss_type='softmax', use_sigmoid=True), 'needs use_sigmoid=False'),
    (dict(loss_type='sigmoid', gamma=2.0), 'no focal term'),
    (dict(loss_type='hinge'), 'loss_type must be one of'),
    (dict(beta=1.0), 'beta must be in'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassBalancedFocalLoss(**kwargs)


def test_wrong_number_of_classes():
    pred, labels, _ = make_cls_inputs(num_classes=7)
    loss = ClassBalancedFocalLoss(class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match='class_counts. has 3 values but pred has 7'):
        loss(pred, labels)


def authors_cb_loss(logits, labels, counts, beta, gamma, loss_type, per_column=False):
    """The CB-loss authors' convention as their PyTorch ports write it
    (vandit15/Class-balanced-loss-pytorch): every column of a sample weighted by
    its own class's w_y, no background, focal normalised by the positives. With
    ``per_column`` their code with one change: class column c weighted by w_c."""
    num_classes = logits.shape[1]
    effective_num = 1.0 - torch.pow(beta, torch.tensor(counts, dtype=torch.float64))
    weights = (1.0 - beta) / effective_num
    weights = weights / weights.sum() * num_classes
    one_hot = torch.nn.functional.one_hot(labels, num_classes).to(logits.dtype)  # the port's
    if per_column:
        weights = weights[None, :].expand(len(labels), -1)
    else:
        weights = (weights[None, :] * one_hot).sum(1, keepdim=True).expand(-1, num_classes)
    if loss_type == 'sigmoid':
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, one_hot,
                                                                    weight=weights)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, one_hot,
                                                               reduction='none')
    modulator = torch.exp(-gamma * one_hot * logits
                          - gamma * torch.log(1 + torch.exp(-1.0 * logits)))
    return (weights * modulator * bce).sum() / one_hot.sum()


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('beta', [0.9, 0.999, 0.9999])
@pytest.mark.parametrize('loss_type, gamma', [('focal', 0.5), ('focal', 2.0),
                                              ('sigmoid', None)])
def test_sample_weighting_is_the_authors_formula(impl, beta, loss_type, gamma):
    counts = [400, 120, 30, 8, 2]
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 5, generator=gen, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (300, ), generator=gen)  # every sample has a class
    expected = authors_cb_loss(logits, labels, counts, beta, gamma or 0.0, loss_type)
    loss = ClassBalancedFocalLoss(class_counts=counts, beta=beta, gamma=gamma,
                                  loss_type=loss_type, weighting='sample', impl=impl)
    # the focal form divides by the positives, the sigmoid form averages all elements
    avg_factor = float(len(labels)) if loss_type == 'focal' else None
    dtype = torch.float64 if impl == 'torch' else torch.float32  # kernels compute in fp32
    got = loss(logits.to(dtype), labels, avg_factor=avg_factor)
    eps = torch.finfo(torch.float32).eps  # the class weights are fp32 on both
    torch.testing.assert_close(got.double(), expected, rtol=256 * eps, atol=0)
    # the class-column form of the paper differs from it once beta weighs classes apart
    column = ClassBalancedFocalLoss(class_counts=counts, beta=beta, gamma=gamma,
                                    loss_type=loss_type, impl=impl)
    assert not torch.allclose(column(logits.to(dtype), labels, avg_factor=avg_factor).double(),
                              expected, rtol=1e-3)


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('beta', [0.9, 0.999, 0.9999])
@pytest.mark.parametrize('loss_type, gamma', [('focal', 0.5), ('focal', 2.0),
                                              ('sigmoid', None)])
def test_class_weighting_is_the_authors_formula_per_column(impl, beta, loss_type, gamma):
    """The default convention: the authors' code with w_c on class column c."""
    counts = [400, 120, 30, 8, 2]
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 5, generator=gen, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (300, ), generator=gen)
    expected = authors_cb_loss(logits, labels, counts, beta, gamma or 0.0, loss_type,
                               per_column=True)
    loss = ClassBalancedFocalLoss(class_counts=counts, beta=beta, gamma=gamma,
                                  loss_type=loss_type, impl=impl)
    avg_factor = float(len(labels)) if loss_type == 'focal' else None
    dtype = torch.float64 if impl == 'torch' else torch.float32  # kernels compute in fp32
    got = loss(logits.to(dtype), labels, avg_factor=avg_factor)
    eps = torch.finfo(torch.float32).eps  # the class weights are fp32 on both
    torch.testing.assert_close(got.double(), expected, rtol=256 * eps, atol=0)


def test_sample_weighting_gives_background_the_mean_class_weight():
    counts = [400, 30, 2]
    pred = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 3, 2])  # 3 = background
    loss = ClassBalancedFocalLoss(class_counts=counts, weighting='sample', impl='torch')
    plain = SigmoidFocalLoss(gamma=0.5, alpha=None, impl='torch')
    w = torch.cat([loss.class_weight, torch.ones(1)])[labels]
    torch.testing.assert_close(loss(pred, labels, reduction_override='none'),
                               plain(pred, labels, reduction_override='none') * w[:, None])
    assert torch.equal(w[3:5], torch.ones(2))


def test_sample_weighting_needs_index_labels():
    loss = ClassBalancedFocalLoss(class_counts=[5, 3], weighting='sample', impl='torch')
    with pytest.raises(ValueError, match=r"weighting='sample'.*\(N,\) index labels"):
        loss(torch.randn(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="weighting must be one of"):
        ClassBalancedFocalLoss(class_counts=[5, 3], weighting='row')


def test_avg_factor_with_sum_raises_for_softmax_class_balanced():
    pred, labels, weight = make_cls_inputs(num_classes=8)
    loss = ClassBalancedFocalLoss(class_counts=[50, 20, 5, 1, 8, 9, 10],
                                  loss_type='softmax')
    with pytest.raises(ValueError, match='avg_factor can not be used'):
        loss(pred, labels.clamp(max=7), weight, avg_factor=10.0, reduction_override='sum')


def test_gradcheck_class_balanced():
    pred, labels, weight = float64_cls_inputs()
    for loss_type in ('focal', 'sigmoid'):
        loss = ClassBalancedFocalLoss(class_counts=[100, 10, 1], loss_type=loss_type)
        assert gradcheck(lambda p: loss(p, labels, weight, avg_factor=4.0), (pred, ))
    softmax = ClassBalancedFocalLoss(class_counts=[100, 10, 1], loss_type='softmax',
                                     use_sigmoid=False)
    scores = torch.randn(12, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda p: softmax(p, labels, weight), (scores, ))
