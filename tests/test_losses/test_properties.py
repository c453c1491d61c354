"""Property-based tests (hypothesis) of the gradient-density weighting."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdet_ghm.losses import GHMCLoss, GHMRLoss, GradientDensity
from mmdet_ghm.ops.histogram_torch import bin_lookup, ghmr_histogram

# The same 40 examples on every machine and every run (derandomize, no example
# database), and no deadline: the verdict must not depend on the machine's speed or
# on what an earlier run found.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


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
@given(g=st.lists(st.floats(0, 1), min_size=1, max_size=300),
       bins=st.integers(1, 40), data=st.data())
def test_mean_weight_over_valid_is_one_without_momentum(g, bins, data):
    g = torch.tensor(g, dtype=torch.float32)
    valid = torch.tensor(data.draw(st.lists(st.booleans(), min_size=len(g),
                                            max_size=len(g))))
    counts, idx = ghmr_histogram(g, valid, bins)  # the histogram of any gradient norm
    bin_weights, _ = GradientDensity(bins, momentum=0.0).weigh(counts)
    weights = bin_lookup(bin_weights, idx)
    assert torch.equal(weights[~valid], torch.zeros_like(weights[~valid]))
    if valid.any():
        torch.testing.assert_close(weights[valid].mean(), torch.tensor(1.0))


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
