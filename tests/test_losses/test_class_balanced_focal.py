import pytest
import torch
import torch.nn.functional as F

from mmdet_ghm.functional import effective_number_weights
from mmdet_ghm.losses import ClassBalancedFocalLoss, SigmoidFocalLoss

from ..conftest import BOTH_IMPLS, make_cls_inputs

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
    one_hot = (labels[:, None] == torch.arange(pred.shape[1])).float()
    w = effective_number_weights(COUNTS, 0.999)
    expected = (F.binary_cross_entropy_with_logits(pred, one_hot, reduction='none')
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
