"""DDP with the statistics synced once per iteration against one process with
the whole batch (tests/ddp_equivalence.py)."""
import subprocess
import sys

import torch

from .conftest import ROOT


def run(tmp_path, sync, images):
    out = tmp_path / f'{sync}_{images}'
    proc = subprocess.run([sys.executable, 'tests/ddp_equivalence.py', sync, images,
                           str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(f'{out}.{who}', weights_only=False)
            for who in ('single', 'rank0', 'rank1')]


def test_ranks_with_the_same_images_equal_one_process_with_both_copies(tmp_path):
    """Each rank weighs with its own counts and tot, and its EMA is that of its
    own counts: when every rank's histogram is the global one's share, that is
    the whole batch's weighting and DDP's average is the whole batch's gradient."""
    single, rank0, rank1 = run(tmp_path, 'sync', 'same')
    assert single['grads'].keys() == rank0['grads'].keys() and single['grads']
    for name, grad in single['grads'].items():
        assert grad.abs().sum() > 0, name
        # fp32 sums in another order
        torch.testing.assert_close(rank0['grads'][name], grad, rtol=1e-4, atol=1e-7,
                                   msg=name)
        torch.testing.assert_close(rank1['grads'][name], rank0['grads'][name],
                                   rtol=0, atol=0)
    assert set(single['ema']) == {'loss_cls.density.acc_sum', 'loss_bbox.density.acc_sum'}
    for name, ema in single['ema'].items():
        assert ema.sum() > 0, name
        # the EMA of counts twice as large (exact: scaling by 2 rounds nothing)
        torch.testing.assert_close(2 * rank0['ema'][name], ema, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(rank1['ema'][name], rank0['ema'][name], rtol=0, atol=0)


def test_synced_ranks_share_the_mean_of_their_emas(tmp_path):
    single, rank0, rank1 = run(tmp_path, 'sync', 'halves')
    for name, ema in rank0['ema'].items():
        own = rank0['rank_ema'][name], rank1['rank_ema'][name]
        assert not torch.equal(*own), name  # each rank's half has its own histogram
        torch.testing.assert_close(ema, (own[0] + own[1]) / 2, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(rank1['ema'][name], ema, rtol=0, atol=0, msg=name)
    for name, grad in rank0['grads'].items():
        torch.testing.assert_close(rank1['grads'][name], grad, rtol=0, atol=0, msg=name)


def test_without_sync_each_rank_keeps_its_own_ema(tmp_path):
    single, rank0, rank1 = run(tmp_path, 'nosync', 'halves')
    for name, ema in rank0['ema'].items():
        assert not torch.equal(ema, rank1['ema'][name]), name
        assert torch.equal(ema, rank0['rank_ema'][name]), name
