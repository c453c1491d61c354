"""DDP with the density synced equals one process with the whole batch."""
import subprocess
import sys

import torch

from .conftest import ROOT


def run(tmp_path, sync):
    out = tmp_path / sync
    proc = subprocess.run([sys.executable, 'tests/ddp_equivalence.py', sync, str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(f'{out}.{who}', weights_only=False)
            for who in ('single', 'rank0', 'rank1')]


def test_two_ranks_with_sync_equal_one_process(tmp_path):
    single, rank0, rank1 = run(tmp_path, 'sync')
    assert single['grads'].keys() == rank0['grads'].keys() and single['grads']
    for name, grad in single['grads'].items():
        assert grad.abs().sum() > 0, name
        # DDP's average of the two ranks' gradients: the gradient of the paper's
        # loss over the whole batch (fp32 sums in another order)
        torch.testing.assert_close(rank0['grads'][name], grad, rtol=1e-4, atol=1e-7,
                                   msg=name)
        torch.testing.assert_close(rank1['grads'][name], rank0['grads'][name],
                                   rtol=0, atol=0)
    assert set(single['ema']) == {'loss_cls.density.acc_sum', 'loss_bbox.density.acc_sum'}
    for name, ema in single['ema'].items():
        torch.testing.assert_close(rank0['ema'][name], ema, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(rank1['ema'][name], ema, rtol=0, atol=0, msg=name)


def test_without_sync_each_rank_weights_its_own_half(tmp_path):
    single, rank0, rank1 = run(tmp_path, 'nosync')
    for name, ema in single['ema'].items():  # per-rank histograms
        assert not torch.equal(rank0['ema'][name], rank1['ema'][name]), name
        assert not torch.equal(rank0['ema'][name], ema), name
    differs = [name for name, grad in single['grads'].items()
               if not torch.allclose(rank0['grads'][name], grad, rtol=1e-4, atol=1e-7)]
    assert differs  # the averaged gradient is no longer the whole batch's
