"""EqualizedFocalLoss: equal to the authors' mechanism (their forward and their
gradient hook, transcribed below) over several iterations, equal to the focal
loss with s = 0, its statistics folded once per iteration, resumed exactly."""
import pytest
import torch

from mmdet_ghm.functional import one_hot_labels
from mmdet_ghm.losses import EqualizedFocalLoss, SigmoidFocalLoss, attach_sync, sync_statistics

from ..helpers import BOTH_IMPLS, make_cls_inputs

# sums over a few hundred elements and ratios of them, in fp32
RTOL = 256 * torch.finfo(torch.float32).eps


class AuthorsEFL:
    """The authors' equalized focal loss (ModelTC/United-Perception,
    up/tasks/det/plugins/efl/models/losses/efl.py), transcribed in float64:
    ``forward`` on the valid anchors (target != ignore) reduced as a sum over
    the normaliser, and ``collect_grad``, their backward hook on the
    classification output, which takes |dL/dx| of the total loss on the valid
    anchors, sums it per class over positives and negatives, adds the sums to
    ``pos_grad`` / ``neg_grad`` and sets ``pos_neg = clamp(pos / (neg + 1e-10),
    0, 1)`` once per iteration (after all FPN levels)."""

    def __init__(self, num_classes, gamma=2.0, alpha=0.25, scale_factor=8.0):
        self.gamma, self.alpha, self.scale_factor = gamma, alpha, scale_factor
        self.pos_grad = torch.zeros(num_classes, dtype=torch.float64)
        self.neg_grad = torch.zeros(num_classes, dtype=torch.float64)
        self.pos_neg = torch.ones(num_classes, dtype=torch.float64)

    def forward(self, logits, labels, valid, normalizer, loss_weight):
        target = one_hot_labels(labels, logits.shape[1]).double()[valid]
        pred = torch.sigmoid(logits[valid])
        pred_t = pred * target + (1 - pred) * (1 - target)
        dy_gamma = self.gamma + self.scale_factor * (1 - self.pos_neg)
        ff = dy_gamma.view(1, -1).expand_as(pred)
        wf = ff / self.gamma
        cls_loss = -torch.log(pred_t) * torch.pow(1 - pred_t, ff) * wf
        alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
        return loss_weight * (alpha_t * cls_loss).sum() / normalizer

    def collect_grad(self, grad, labels, valid):
        target = one_hot_labels(labels, grad.shape[1]).double()[valid]
        grad = grad.abs()[valid]
        self.pos_grad += (grad * target).sum(0)
        self.neg_grad += (grad * (1 - target)).sum(0)
        self.pos_neg = torch.clamp(self.pos_grad / (self.neg_grad + 1e-10), min=0, max=1)


def iteration_inputs(step, num_classes=6):
    """One iteration's anchors: logits, labels (C = background), and a validity
    mask with ignored anchors, a different normaliser each time."""
    pred, labels, weight = make_cls_inputs(num_anchors=240, num_classes=num_classes,
                                           seed=10 + step, pos_frac=0.15, ignore_frac=0.1)
    return pred, labels, weight, (4.0, 9.5, 17.0, 2.0)[step % 4]


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('loss_weight', [1.0, 2.5])
def test_equals_the_authors_forward_and_hook(impl, loss_weight):
    ours = EqualizedFocalLoss(num_classes=6, loss_weight=loss_weight, impl=impl)
    attach_sync(ours)
    theirs = AuthorsEFL(6)
    levels = [slice(0, 100), slice(100, 180), slice(180, 240)]  # per-level calls
    for step in range(4):
        pred, labels, weight, normalizer = iteration_inputs(step)
        x = pred.clone().requires_grad_()
        loss = sum(ours(x[level], labels[level], weight[level], avg_factor=normalizer)
                   for level in levels)
        loss.backward()
        sync_statistics(ours)  # SyncStatisticsHook, after the iteration

        x_ref = pred.double().requires_grad_()
        ref = theirs.forward(x_ref, labels, weight > 0, normalizer, loss_weight)
        ref.backward()
        theirs.collect_grad(x_ref.grad, labels, weight > 0)

        torch.testing.assert_close(loss.double(), ref.detach(), rtol=RTOL, atol=0)
        torch.testing.assert_close(x.grad.double(), x_ref.grad, rtol=RTOL, atol=1e-9)
        stats = ours.statistics
        for name in ('pos_grad', 'neg_grad', 'pos_neg'):
            torch.testing.assert_close(getattr(stats, name).double(), getattr(theirs, name),
                                       rtol=RTOL, atol=1e-12, msg=f'{name}, step {step}')
    # the ratio has moved away from 1 (focal) for every class
    assert (ours.statistics.pos_neg < 0.5).all()


@pytest.mark.parametrize('impl', BOTH_IMPLS)
def test_scale_factor_zero_is_the_focal_loss(impl):
    efl = EqualizedFocalLoss(num_classes=6, scale_factor=0.0, impl=impl)
    attach_sync(efl)
    focal = SigmoidFocalLoss(gamma=2.0, alpha=0.25, impl=impl)
    for step in range(3):
        pred, labels, weight, normalizer = iteration_inputs(step)
        x, x_focal = pred.clone().requires_grad_(), pred.clone().requires_grad_()
        loss = efl(x, labels, weight, avg_factor=normalizer)
        loss_focal = focal(x_focal, labels, weight, avg_factor=normalizer)
        (loss + loss_focal).backward()
        sync_statistics(efl)
        torch.testing.assert_close(loss, loss_focal, rtol=RTOL, atol=0)
        torch.testing.assert_close(x.grad, x_focal.grad, rtol=RTOL, atol=1e-9)
    assert (efl.statistics.pos_neg < 1).all()  # statistics kept, no effect at s = 0


def test_index_and_dense_targets_agree():
    """One-hot targets take the autograd path, index labels the hand-written one."""
    losses = [EqualizedFocalLoss(num_classes=6, impl='torch') for _ in range(2)]
    for loss in losses:
        attach_sync(loss)
    for step in range(3):
        pred, labels, weight, normalizer = iteration_inputs(step)
        results = []
        for loss, target in zip(losses, (labels, one_hot_labels(labels, 6))):
            x = pred.clone().requires_grad_()
            value = loss(x, target, weight, avg_factor=normalizer)
            value.backward()
            sync_statistics(loss)
            results.append((value, x.grad, loss.statistics.pos_grad, loss.statistics.neg_grad))
        for index_result, dense_result in zip(*results):
            torch.testing.assert_close(index_result, dense_result, rtol=RTOL, atol=1e-9)


def test_statistics_fold_once_per_iteration():
    loss = EqualizedFocalLoss(num_classes=6, impl='torch')
    attach_sync(loss)
    pred, labels, weight, normalizer = iteration_inputs(0)
    first = loss(pred, labels, weight, avg_factor=normalizer)
    second = loss(pred, labels, weight, avg_factor=normalizer)
    assert torch.equal(first, second)  # the same ratio within an iteration
    assert torch.equal(loss.statistics.pos_neg, torch.ones(6))
    assert (loss.statistics.statistics_to_sum() > 0).all()
    sync_statistics(loss)
    assert (loss.statistics.pos_neg < 1).all()
    assert not loss.statistics.pending.any()
    assert not torch.equal(loss(pred, labels, weight, avg_factor=normalizer), first)


def test_eval_calls_keep_no_statistics():
    loss = EqualizedFocalLoss(num_classes=6, impl='torch').eval()
    pred, labels, weight, normalizer = iteration_inputs(0)
    loss(pred, labels, weight, avg_factor=normalizer)  # no hook needed either
    assert not loss.statistics.pending.any()


def test_training_without_the_sync_hook_is_refused():
    loss = EqualizedFocalLoss(num_classes=6, impl='torch')
    pred, labels, weight, normalizer = iteration_inputs(0)
    with pytest.raises(RuntimeError, match=r"dict\(type='SyncStatisticsHook'\)"):
        loss(pred, labels, weight, avg_factor=normalizer)


def test_resumed_statistics_continue_exactly():
    def train(loss, steps):
        values = []
        for step in steps:
            pred, labels, weight, normalizer = iteration_inputs(step)
            x = pred.clone().requires_grad_()
            value = loss(x, labels, weight, avg_factor=normalizer)
            value.backward()
            sync_statistics(loss)
            values.append((value.detach(), x.grad))
        return values

    straight = EqualizedFocalLoss(num_classes=6, impl='torch')
    attach_sync(straight)
    expected = train(straight, range(4))
    first = EqualizedFocalLoss(num_classes=6, impl='torch')
    attach_sync(first)
    train(first, range(2))
    state = first.state_dict()
    assert set(state) == {'statistics.pos_grad', 'statistics.neg_grad', 'statistics.pos_neg'}
    resumed = EqualizedFocalLoss(num_classes=6, impl='torch')
    resumed.load_state_dict(state)
    attach_sync(resumed)
    for (value, grad), (ref_value, ref_grad) in zip(train(resumed, range(2, 4)),
                                                    expected[2:]):
        assert torch.equal(value, ref_value) and torch.equal(grad, ref_grad)
    for name, buffer in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], buffer), name


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_give_fp32_statistics(dtype):
    losses = [EqualizedFocalLoss(num_classes=6, impl='torch') for _ in range(2)]
    pred, labels, weight, normalizer = iteration_inputs(0)
    for loss, x in zip(losses, (pred.to(dtype), pred.to(dtype).float())):
        attach_sync(loss)
        value = loss(x.requires_grad_(), labels, weight, avg_factor=normalizer)
        assert value.dtype == torch.float32
        sync_statistics(loss)
        assert loss.statistics.pos_grad.dtype == torch.float32
    for name in ('pos_grad', 'neg_grad'):
        assert torch.equal(getattr(losses[0].statistics, name),
                           getattr(losses[1].statistics, name))


@pytest.mark.parametrize('kwargs,match', [
    (dict(), 'num_classes must be the number of classes'),
    (dict(num_classes=6, gamma=0.0), 'gamma must be > 0'),
    (dict(num_classes=6, scale_factor=-1.0), 'scale_factor must be >= 0'),
    (dict(num_classes=6, alpha=1.5), r'alpha must be in \[0, 1\]'),
    (dict(num_classes=6, use_sigmoid=False), 'use_sigmoid=False is not supported'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EqualizedFocalLoss(**kwargs)


def test_class_count_mismatch():
    pred, labels, weight, _ = iteration_inputs(0)
    with pytest.raises(ValueError, match='pred has 6 classes but num_classes is 7'):
        EqualizedFocalLoss(num_classes=7).eval()(pred, labels, weight)


def test_several_ranks_sum_their_statistics(monkeypatch):
    """sync_statistics with a stand-in all-reduce of two identical ranks: EFL's
    iteration sums are summed over the ranks (the authors' all-reduce), GHM's EMA
    averaged; both in the one collective."""
    from mmdet_ghm.losses import GHMCLoss, rank_sync
    calls = []

    def all_reduce(tensor):
        calls.append(tensor.numel())
        tensor.mul_(2)

    monkeypatch.setattr(rank_sync, 'distributed_world_size', lambda: 2)
    monkeypatch.setattr(rank_sync.dist, 'all_reduce', all_reduce)
    model = torch.nn.ModuleDict(dict(efl=EqualizedFocalLoss(num_classes=6, impl='torch'),
                                     ghmc=GHMCLoss(impl='torch')))
    attach_sync(model)
    pred, labels, weight, normalizer = iteration_inputs(0)
    model['efl'](pred, labels, weight, avg_factor=normalizer)
    model['ghmc'](pred, labels, weight)
    local = model['efl'].statistics.pending.clone()
    ema = model['ghmc'].density.acc_sum.clone()
    sync_statistics(model)
    assert calls == [2 * 6 + 30]
    assert torch.equal(model['efl'].statistics.pos_grad, 2 * local[0])
    assert torch.equal(model['efl'].statistics.neg_grad, 2 * local[1])
    assert torch.equal(model['ghmc'].density.acc_sum, ema)
