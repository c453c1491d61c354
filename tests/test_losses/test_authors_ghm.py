"""GHMCLoss and GHMRLoss against the GHM authors' code (tests/authors_ghm.py, a
transcription of libuyu/mmdetection be06992's ghm_loss.py), both called once per
FPN level as their RetinaHead calls them: the per-level losses, the gradients of
the logits and deltas, and the EMA of the bin counts over 3 iterations (15 calls)."""
import pytest
import torch

from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..authors_ghm import AuthorsGHMC, AuthorsGHMR, authors_labels, per_level
from ..helpers import BOTH_IMPLS, make_cls_inputs, make_reg_inputs

# anchors per FPN level (P3 to P7 of a RetinaNet, each a quarter of the one before)
LEVELS = [1536, 384, 96, 24, 6]
NUM_CLASSES = 7
ITERATIONS = 3
EPS = torch.finfo(torch.float32).eps
# Both compute the loss elements in fp32; the authors' EMA and weights are in
# float64 (Python floats) rounded to fp32 once, ours in fp32 (a rounding per step),
# and the sums of a level's terms run in another order: measured up to 1.3 eps
# (relative) on the losses, the EMA and the gradients, on both implementations.
RTOL = 8 * EPS


def check_iterations(ours, theirs, make_inputs, ours_args, theirs_args):
    """Runs ITERATIONS iterations of one call per level on both; compares."""
    for iteration in range(ITERATIONS):
        pred, *rest = make_inputs(iteration)
        grads, losses = [], []
        for loss, args in ((ours, ours_args), (theirs, theirs_args)):
            x = pred.clone().requires_grad_()
            level_losses = per_level(loss, LEVELS, x, *args(*rest))
            sum(level_losses).backward()
            losses.append(torch.stack([v.detach().float() for v in level_losses]))
            grads.append(x.grad)
        assert (losses[1] > 0).sum() >= 3  # levels with something to compare
        torch.testing.assert_close(losses[0], losses[1], rtol=RTOL, atol=EPS)
        # an element's gradient: to RTOL of the largest (small ones are sums too)
        torch.testing.assert_close(grads[0], grads[1], rtol=RTOL,
                                   atol=RTOL * float(grads[1].abs().max()))
        if theirs.momentum > 0:
            torch.testing.assert_close(ours.density.acc_sum,
                                       torch.tensor(theirs.acc_sum, dtype=torch.float32),
                                       rtol=RTOL, atol=0)
    if theirs.momentum > 0:
        assert sum(v > 0 for v in theirs.acc_sum) >= 3


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('bins, momentum', [(30, 0.75), (10, 0.0)])
def test_ghmc_equals_the_authors_per_level(impl, bins, momentum):
    # (30, 0.75): the paper's COCO config; (10, 0): their defaults
    ours = GHMCLoss(bins=bins, momentum=momentum, loss_weight=1.0, impl=impl)
    theirs = AuthorsGHMC(bins=bins, momentum=momentum, loss_weight=1.0)

    def make_inputs(iteration):
        return make_cls_inputs(num_anchors=sum(LEVELS), num_classes=NUM_CLASSES,
                               seed=10 + iteration, scale=2.0 + iteration, pos_frac=0.05)

    check_iterations(ours, theirs, make_inputs,
                     ours_args=lambda labels, weight: (labels, weight),
                     theirs_args=lambda labels, weight: (
                         authors_labels(labels, NUM_CLASSES), weight))


@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('bins, momentum', [(10, 0.7), (10, 0.0)])
def test_ghmr_equals_the_authors_per_level(impl, bins, momentum):
    # (10, 0.7) with loss_weight 10: the paper's COCO config; (10, 0): their defaults
    ours = GHMRLoss(mu=0.02, bins=bins, momentum=momentum, loss_weight=10.0, impl=impl)
    theirs = AuthorsGHMR(mu=0.02, bins=bins, momentum=momentum, loss_weight=10.0)

    def make_inputs(iteration):
        return make_reg_inputs(num_anchors=sum(LEVELS), seed=20 + iteration,
                               pos_frac=0.1)

    same = lambda target, weight: (target, weight)  # noqa: E731
    check_iterations(ours, theirs, make_inputs, ours_args=same, theirs_args=same)
