"""Single-threaded CPU ops (bincount, the bin lookup) split over threads."""
import torch

from mmdet_ghm.ops import torch_threads as threads
from mmdet_ghm.ops.histogram_torch import bin_counts, bin_lookup


def test_parts_cover_the_range_once_and_follow_torch_threads(monkeypatch):
    monkeypatch.setattr(threads, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 3)
    assert threads.over_parts(lambda a, b: (a, b), 95) == [(0, 31), (31, 63), (63, 95)]
    assert threads.over_parts(lambda a, b: (a, b), 25) == [(0, 12), (12, 25)]
    assert threads.over_parts(lambda a, b: (a, b), 19) == [(0, 19)]
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 1)
    assert threads.over_parts(lambda a, b: (a, b), 95) == [(0, 95)]


def test_counts_and_lookup_over_parts_equal_one_part(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 31, (37, 29), generator=gen, dtype=torch.int32)  # 30 = overflow
    table = torch.rand(31, generator=gen)
    whole = bin_counts(idx, 30), bin_lookup(table, idx)
    assert torch.equal(whole[0], torch.bincount(idx.view(-1).long(), minlength=31)[:30])
    assert torch.equal(whole[1], table[idx.long()])
    monkeypatch.setattr(threads, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 4)
    assert len(threads.over_parts(lambda a, b: None, idx.numel())) == 4
    assert torch.equal(bin_counts(idx, 30), whole[0])
    assert torch.equal(bin_lookup(table, idx), whole[1])


def test_workers_take_the_callers_inference_mode(monkeypatch):
    # an inference tensor can only be written to in inference mode
    monkeypatch.setattr(threads, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    with torch.inference_mode():
        idx = torch.randint(0, 31, (100, 7), dtype=torch.int32)
        table = torch.rand(31)
        assert torch.equal(bin_lookup(table, idx), table[idx.long()])
        assert torch.equal(bin_counts(idx, 30),
                           torch.bincount(idx.view(-1).long(), minlength=31)[:30])
