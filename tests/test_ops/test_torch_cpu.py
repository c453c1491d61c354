"""The PyTorch implementations compute the same loss and gradient whether the rows go
in one chunk or in many (the last one ragged), on one thread or several; the
single-threaded CPU ops (bincount, the bin lookup) split over threads."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet_ghm.losses import ClassBalancedFocalLoss, GHMCLoss, SigmoidFocalLoss
from mmdet_ghm.ops import torch_cpu
from mmdet_ghm.ops.histogram_torch import bin_counts, bin_lookup

from ..helpers import loss_and_grad, make_cls_inputs


EPS = torch.finfo(torch.float64).eps


NUM_CLASSES = 7


LOSSES = {
    'GHMCLoss': lambda: GHMCLoss(impl='torch'),
    'SigmoidFocalLoss': lambda: SigmoidFocalLoss(impl='torch'),
    'ClassBalancedFocalLoss': lambda: ClassBalancedFocalLoss(
        class_counts=[5, 50, 500, 5000, 7, 70, 700], impl='torch'),
}


@pytest.mark.parametrize('loss_name', LOSSES)
@pytest.mark.parametrize('layout', ['index', 'dense'])
@pytest.mark.parametrize('weight_kind', [None, 'row', 'dense'])
@pytest.mark.parametrize('reduction', ['sum', 'none'])
def test_many_chunks_equal_one(monkeypatch, loss_name, layout, weight_kind, reduction):
    pred, labels, row_weight = make_cls_inputs(num_anchors=301, num_classes=NUM_CLASSES,
                                               dtype=torch.float64)
    target = labels if layout == 'index' else (
        labels[:, None] == torch.arange(NUM_CLASSES)).double()
    weight = {None: None, 'row': row_weight.double() * torch.rand(301).double(),
              'dense': torch.rand(301, NUM_CLASSES).double()}[weight_kind]
    whole = loss_and_grad(LOSSES[loss_name](), pred, target, weight, calls=2,
                          reduction_override=reduction)
    # 7 classes: 5 rows per chunk, 61 chunks, the last of one row; bincount and
    # the lookup of each chunk in two threads
    monkeypatch.setattr(torch_cpu, 'CHUNK_ELEMENTS', 5 * NUM_CLASSES)
    monkeypatch.setattr(torch_cpu, 'MIN_PART', 8)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    assert len(torch_cpu.row_chunks(pred)) == 61
    chunked = loss_and_grad(LOSSES[loss_name](), pred, target, weight, calls=2,
                          reduction_override=reduction)
    # elementwise results differ only in the rounding of vectorised and scalar
    # transcendentals; a sum also in its order
    loss_tol = (pred.numel() if reduction == 'sum' else 16) * EPS
    torch.testing.assert_close(chunked[0], whole[0], rtol=loss_tol,
                               atol=loss_tol * whole[0].abs().max())
    torch.testing.assert_close(chunked[1], whole[1], rtol=16 * EPS,
                               atol=16 * EPS * whole[1].abs().max())


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_of_step(make_loss, num_anchors, num_classes=80):
    """Ops (on a GPU, kernel launches) of forward + backward on meta tensors,
    which take the PyTorch implementation's GPU code path without data."""
    meta = torch.device('meta')
    loss_module = make_loss().to(meta)
    pred = torch.empty(num_anchors, num_classes, device=meta, requires_grad=True)
    labels = torch.empty(num_anchors, dtype=torch.long, device=meta)
    weight = torch.empty(num_anchors, device=meta)
    with CountOps() as ops:
        loss_module(pred, labels, weight, reduction_override='sum').backward()
    return ops.count


@pytest.mark.parametrize('loss_name', LOSSES)
def test_torch_implementation_on_a_gpu_runs_large_chunks(loss_name):
    """On the CPU a COCO batch (401,400 x 80) goes in 31 chunks; on a GPU, where
    each op is a launch, in 2, with at most twice the ops of a single chunk."""
    make_loss = {**LOSSES, 'ClassBalancedFocalLoss': lambda: ClassBalancedFocalLoss(
        class_counts=list(range(1, 81)), impl='torch')}[loss_name]
    shape = (401_400, 80)
    assert len(torch_cpu.row_chunks(torch.empty(shape, device='meta'))) == 2
    assert len(torch_cpu.row_chunks(torch.empty(1, 80).expand(shape[0], -1))) == 31
    assert ops_of_step(make_loss, shape[0]) <= 2 * ops_of_step(make_loss, 1_000)


def test_parts_cover_the_range_once_and_follow_torch_threads(monkeypatch):
    monkeypatch.setattr(torch_cpu, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 3)
    assert torch_cpu.over_parts(lambda a, b: (a, b), 95) == [(0, 31), (31, 63), (63, 95)]
    assert torch_cpu.over_parts(lambda a, b: (a, b), 25) == [(0, 12), (12, 25)]
    assert torch_cpu.over_parts(lambda a, b: (a, b), 19) == [(0, 19)]
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 1)
    assert torch_cpu.over_parts(lambda a, b: (a, b), 95) == [(0, 95)]


def test_counts_and_lookup_over_parts_equal_one_part(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 31, (37, 29), generator=gen, dtype=torch.int32)  # 30 = overflow
    table = torch.rand(31, generator=gen)
    whole = bin_counts(idx, 30), bin_lookup(table, idx)
    assert torch.equal(whole[0], torch.bincount(idx.view(-1).long(), minlength=31)[:30])
    assert torch.equal(whole[1], table[idx.long()])
    monkeypatch.setattr(torch_cpu, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 4)
    assert len(torch_cpu.over_parts(lambda a, b: None, idx.numel())) == 4
    assert torch.equal(bin_counts(idx, 30), whole[0])
    assert torch.equal(bin_lookup(table, idx), whole[1])


def test_workers_take_the_callers_inference_mode(monkeypatch):
    # an inference tensor can only be written to in inference mode
    monkeypatch.setattr(torch_cpu, 'MIN_PART', 10)
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 2)
    with torch.inference_mode():
        idx = torch.randint(0, 31, (100, 7), dtype=torch.int32)
        table = torch.rand(31)
        assert torch.equal(bin_lookup(table, idx), table[idx.long()])
        assert torch.equal(bin_counts(idx, 30),
                           torch.bincount(idx.view(-1).long(), minlength=31)[:30])
