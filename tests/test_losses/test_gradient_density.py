"""GradientDensity and the bin rule: bins, counts, per-bin weights and their EMA, and
the logging state that DensityLoggerHook reads."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mmdet_ghm.functional import bin_index, density_weights
from mmdet_ghm.losses import GradientDensity
from mmdet_ghm.ops.histogram_torch import bin_counts, bin_lookup, ghmr_histogram

from ..helpers import SETTINGS


def test_bin_index_matches_edge_comparisons():
    edges = torch.arange(31, dtype=torch.float32) / 30
    g = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    valid = torch.rand(g.shape) > 0.2
    idx = bin_index(g, 30, valid)
    for i in range(30):
        in_bin = (g >= edges[i]) & (g < edges[i + 1]) & valid
        assert torch.equal(idx == i, in_bin), i
    assert torch.equal(idx == 30, ~valid)


def test_bin_index_exact_edges_and_one():
    # with 8 bins the edges i / 8 are exact: each lands in the bin it opens
    g = torch.tensor([0.0, 0.125, 0.25, 0.5, 0.875, 0.99999994, 1.0])
    assert bin_index(g, 8).tolist() == [0, 1, 2, 4, 7, 7, 7]


def test_bin_counts_ignore_overflow_index():
    idx = torch.tensor([0, 2, 2, 3, 3, 3])  # 3 = overflow for bins=3
    assert bin_counts(idx, 3).tolist() == [1, 0, 2]
    assert bin_counts(idx, 3).dtype == torch.int64


def test_density_weights_without_momentum():
    counts = torch.tensor([4, 0, 1, 5])
    weights, acc, tot = density_weights(counts, torch.zeros(4), 0.0)
    # tot = 10, 3 non-empty bins: weight = 10 / count / 3
    expected = torch.tensor([10 / 4 / 3, 0, 10 / 1 / 3, 10 / 5 / 3, 0])
    assert torch.allclose(weights, expected)
    assert tot.item() == 10
    # mean weight over valid elements is 1 when there is no EMA
    assert torch.isclose((weights[:4] * counts).sum() / tot, torch.tensor(1.0))


def test_density_weights_ema_updates_only_nonempty_bins():
    counts = torch.tensor([4, 0, 2])
    acc0 = torch.tensor([1.0, 7.0, 3.0])
    weights, acc, tot = density_weights(counts, acc0, 0.75)
    assert torch.allclose(acc, torch.tensor([0.75 + 0.25 * 4, 7.0, 2.25 + 0.25 * 2]))
    assert torch.allclose(weights[:3], torch.tensor([6 / acc[0] / 2, 0, 6 / acc[2] / 2]))
    assert torch.equal(acc0, torch.tensor([1.0, 7.0, 3.0]))  # input untouched


def test_density_weights_all_empty_is_zero_not_nan():
    weights, acc, tot = density_weights(torch.zeros(5, dtype=torch.long),
                                        torch.zeros(5), 0.75)
    assert torch.equal(weights, torch.zeros(6))
    assert tot.item() == 0


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


def counts_of(*values):
    return torch.tensor(values, dtype=torch.int64)


def test_interval_stats_cover_every_training_call_then_reset():
    density = GradientDensity(bins=3, momentum=0.5)
    calls = [counts_of(6, 0, 2), counts_of(0, 1, 9), counts_of(4, 4, 0)]
    expected_max, acc = 0.0, torch.zeros(3)
    for counts in calls:
        weights, acc, _ = density_weights(counts, acc, 0.5)
        expected_max = max(expected_max, float(weights.max()))
        density.weigh(counts)
    total = torch.stack(calls).sum(0)
    share, max_weight = density.pop_interval_stats()
    assert share == pytest.approx(float(total[-1] / total.sum()))
    assert max_weight == pytest.approx(expected_max)
    assert density.pop_interval_stats() == (0.0, 0.0)


def test_eval_calls_leave_the_logging_state_alone():
    density = GradientDensity(bins=3, momentum=0.5)
    density.weigh(counts_of(1, 2, 3))
    last = density.last_weights.clone()
    density.eval()
    density.weigh(counts_of(9, 0, 0))
    assert torch.equal(density.last_weights, last)
    assert density.pop_interval_stats()[0] == pytest.approx(3 / 6)


def test_a_call_without_valid_elements_keeps_the_last_weights():
    # in level scope the last level (P7) often has no positive anchor for GHM-R
    density = GradientDensity(bins=3, momentum=0.0)
    density.weigh(counts_of(1, 0, 3))
    last_weights, last_counts = density.last_weights.clone(), density.last_counts.clone()
    assert last_weights.sum() > 0
    density.weigh(counts_of(0, 0, 0))
    assert torch.equal(density.last_weights, last_weights)
    assert torch.equal(density.last_counts, last_counts)
    density.weigh(counts_of(0, 5, 0))
    assert torch.equal(density.last_counts, torch.tensor([0.0, 5.0, 0.0]))


@pytest.mark.parametrize('loss_name', ['GHMCLoss', 'GHMRLoss'])
def test_a_training_call_under_several_ranks_needs_the_sync_hook(monkeypatch, loss_name):
    """Without SyncStatisticsHook the ranks' EMAs would drift apart silently."""
    from mmdet_ghm.losses import attach_sync, rank_sync

    from ..helpers import LOSSES
    build, make_inputs = LOSSES[loss_name]
    monkeypatch.setattr(rank_sync, 'distributed_world_size', lambda: 2)
    loss = build().train()
    with pytest.raises(RuntimeError, match=r"dict\(type='SyncStatisticsHook'\)"):
        loss(*make_inputs())
    assert loss.density.acc_sum.sum() == 0  # refused before any update
    loss.eval()(*make_inputs())  # eval calls keep no statistic
    attach_sync(loss)
    loss.train()(*make_inputs())
    assert loss.density.acc_sum.sum() > 0


@pytest.mark.parametrize('kwargs', [dict(sync_density=False), dict(momentum=0.0)])
def test_nothing_to_sync_runs_without_the_hook(monkeypatch, kwargs):
    from mmdet_ghm.losses import GHMCLoss, rank_sync

    from ..helpers import make_cls_inputs
    monkeypatch.setattr(rank_sync, 'distributed_world_size', lambda: 2)
    assert torch.isfinite(GHMCLoss(**kwargs).train()(*make_cls_inputs()))
