"""GradientDensity's logging state: what DensityLoggerHook reads."""
import pytest
import torch

from mmdet_ghm.functional import density_weights
from mmdet_ghm.losses import GradientDensity


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
