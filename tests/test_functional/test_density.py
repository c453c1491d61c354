import torch

from mmdet_ghm.functional import bin_index, density_weights
from mmdet_ghm.ops.histogram_torch import bin_counts


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
