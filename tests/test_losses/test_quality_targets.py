"""mmdet's quality target ``(labels (N,), scores (N,))``, as GFL, TOOD and RTMDet
pass it to QualityFocalLoss: each classification loss computes on it what it
computes on the dense target it stands for (the score at the label's column, 0
elsewhere), on both implementations, and agrees with mmdet's FocalLoss on that
target and with QualityFocalLoss where the two formulas coincide."""
import pytest
import torch
from mmdet.models.losses import FocalLoss, QualityFocalLoss

from mmdet_ghm.functional import one_hot_labels
from mmdet_ghm.losses import SigmoidFocalLoss

from ..helpers import BOTH_IMPLS, CLS_LOSSES, loss_and_grad, make_cls_inputs

EPS = torch.finfo(torch.float32).eps


def quality_inputs(seed=0, binary=False):
    """Logits, labels, (N,) label weights and (N,) scores (IoU-like, in (0, 1];
    0 or 1 with ``binary``; background rows have a score too, which no loss reads)."""
    pred, labels, weight = make_cls_inputs(num_anchors=300, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    scores = torch.rand(len(labels), generator=gen)
    if binary:
        scores = (scores > 0.3).float()
    return pred, labels, weight, scores


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('name', CLS_LOSSES)
def test_a_quality_target_is_its_dense_target(name, impl):
    pred, labels, weight, scores = quality_inputs()
    dense = one_hot_labels(labels, pred.shape[1]) * scores[:, None]
    quality, dense_loss = CLS_LOSSES[name](impl=impl), CLS_LOSSES[name](impl=impl)
    for _ in range(2):  # GHM-C: the EMA of the second call holds the first's counts
        loss, grad = loss_and_grad(quality, pred, (labels, scores), weight, avg_factor=7.0)
        ref, ref_grad = loss_and_grad(dense_loss, pred, dense, weight, avg_factor=7.0)
        # the same elementwise ops on the same values (y = 1 * score or the
        # dense target's score); sums in the same order
        torch.testing.assert_close(loss, ref, rtol=0, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=0)
    # the scores are used: 0/1 labels give another loss
    assert not torch.equal(loss, loss_and_grad(CLS_LOSSES[name](impl=impl), pred, labels,
                                               weight, avg_factor=7.0)[0])


@pytest.mark.parametrize('impl', BOTH_IMPLS)
def test_focal_on_a_quality_target_is_mmdets_focal_loss_on_its_dense_target(impl):
    pred, labels, weight, scores = quality_inputs(seed=1)
    ours = SigmoidFocalLoss(gamma=2.0, alpha=0.25, impl=impl)
    theirs = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)
    dense = one_hot_labels(labels, pred.shape[1]) * scores[:, None]
    loss, grad = loss_and_grad(ours, pred, (labels, scores), weight, avg_factor=9.0)
    ref, ref_grad = loss_and_grad(theirs, pred, dense, weight[:, None], avg_factor=9.0)
    # mmdet takes (1 - p_t)^gamma as a pow, we in log space: a few ulps per element
    torch.testing.assert_close(loss, ref, rtol=64 * EPS, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=64 * EPS,
                               atol=64 * EPS * ref_grad.abs().max().item())


@pytest.mark.parametrize('impl', BOTH_IMPLS)
def test_focal_without_alpha_is_quality_focal_loss_on_0_1_scores(impl):
    # QFL's |q - p|^beta is focal's (1 - p_t)^gamma where q is 0 or 1
    pred, labels, weight, scores = quality_inputs(seed=2, binary=True)
    ours = SigmoidFocalLoss(gamma=2.0, alpha=None, impl=impl)
    theirs = QualityFocalLoss(use_sigmoid=True, beta=2.0)
    loss, grad = loss_and_grad(ours, pred, (labels, scores), weight, avg_factor=9.0)
    ref, ref_grad = loss_and_grad(theirs, pred, (labels, scores), weight, avg_factor=9.0)
    torch.testing.assert_close(loss, ref, rtol=64 * EPS, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=64 * EPS,
                               atol=64 * EPS * ref_grad.abs().max().item())


@pytest.mark.parametrize('name', CLS_LOSSES)
@pytest.mark.parametrize('target, error, message', [
    (lambda labels, scores: (labels, scores, scores), TypeError,
     r'a quality `target` must be a pair of tensors \(labels \(N,\), scores \(N,\)\)'),
    (lambda labels, scores: (labels, scores[:-1]), ValueError,
     r'the scores of a quality target must be \(N,\) = \(300,\) floats'),
    (lambda labels, scores: (labels, scores + 1.5), RuntimeError,
     r'`target scores` must be in \[0.0, 1.0\] \(quality targets\)'),
    (lambda labels, scores: (labels.float(), scores), TypeError,
     r'`target` must hold integer class indices'),
])
def test_bad_quality_targets_say_what_is_wrong(name, target, error, message):
    pred, labels, weight, scores = quality_inputs()
    with pytest.raises(error, match=message):
        CLS_LOSSES[name]()(pred, target(labels, scores), weight)


ACTIVATED = list(CLS_LOSSES)


@pytest.mark.parametrize('name', ACTIVATED)
def test_activated_takes_probabilities(name):
    # TOOD passes probabilities (QualityFocalLoss(activated=True)): the same loss
    # of their logits, the gradient through the sigmoid's inverse
    pred, labels, weight, scores = quality_inputs(seed=3)
    prob = torch.sigmoid(pred.double()).float()
    logits = torch.logit(prob.double())  # the logits those fp32 probabilities hold
    build = CLS_LOSSES[name]
    loss, grad = loss_and_grad(build(), logits.float(), (labels, scores), weight,
                               avg_factor=5.0)
    activated = build()
    activated.activated = True
    act_loss, act_grad = loss_and_grad(activated, prob, (labels, scores), weight,
                                       avg_factor=5.0)
    # the fp32 logit of an fp32 probability rounds differently from fp64's:
    # a few ulps of each logit, so of each term
    torch.testing.assert_close(act_loss, loss, rtol=64 * EPS, atol=0)
    # d loss / d p = d loss / d x * 1 / (p (1 - p)): a few fp32 roundings (the
    # logit, the chain rule's division) against the largest gradient; the tiny
    # terms of far negatives carry more relative error, but not more absolute
    expected = grad.double() / (prob.double() * (1 - prob.double()))
    torch.testing.assert_close(act_grad.double(), expected, rtol=8 * EPS,
                               atol=8 * EPS * expected.abs().max().item())


@pytest.mark.parametrize('name', ACTIVATED)
def test_activated_refuses_probabilities_of_0_or_1(name):
    pred, labels, weight, scores = quality_inputs()
    prob = torch.sigmoid(pred)
    prob[3, 2] = 1.0
    loss = CLS_LOSSES[name]()
    loss.activated = True
    with pytest.raises(RuntimeError, match=r'activated=True `pred` must hold probabilities '
                       r'in \(0, 1\)'):
        loss(prob, (labels, scores), weight)
