"""tools/gpu_check.py's comparison, run here by Triton's interpreter on the CPU."""
import importlib

import pytest
import torch


from ..helpers import RUNS_KERNELS
from .conftest import load_tool

pytestmark = RUNS_KERNELS

gpu_check = load_tool('gpu_check')

CPU = torch.device('cpu')


def test_kernels_match_the_twin(capsys):
    assert gpu_check.check(CPU, anchors=300) == 0
    rows = gpu_check.compare(gpu_check.make_inputs(300, CPU), CPU)
    assert [r['loss'] for r in rows] == ['GHMCLoss', 'GHMRLoss', 'SigmoidFocalLoss',
                                         'ClassBalancedFocalLoss']
    for row in rows:
        assert row['ok'] and row['value'] <= gpu_check.RTOL and row['grad'] <= gpu_check.RTOL
    assert {r['loss'] for r in rows if 'ema' in r} == {'GHMCLoss', 'GHMRLoss'}
    assert 'GHMCLoss' in capsys.readouterr().out


@pytest.mark.parametrize('kernel', ['ghmc_triton.ghmc_weighted_bce',
                                    'focal_triton.sigmoid_focal_loss'])
def test_a_wrong_kernel_fails_the_check(monkeypatch, capsys, kernel):
    module, name = kernel.split('.')
    module = importlib.import_module(f'mmdet_ghm.ops.{module}')
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: real(*a, **k) * (1 + 1e-4))
    assert gpu_check.check(CPU, anchors=300) == 1
    assert ' NO ' in capsys.readouterr().out


def test_a_wrong_histogram_fails_the_check(monkeypatch):
    from mmdet_ghm.ops import histogram_triton
    real = histogram_triton.gradient_histogram

    def shifted(*args, **kwargs):  # one element in the neighbouring bin
        out = real(*args, **kwargs)
        counts = out[0] if isinstance(out, tuple) else out
        counts[0] -= 1
        counts[1] += 1
        return out

    monkeypatch.setattr(histogram_triton, 'gradient_histogram', shifted)
    rows = gpu_check.compare(gpu_check.make_inputs(300, CPU), CPU)
    assert not any(r['ok'] for r in rows if r['loss'] in ('GHMCLoss', 'GHMRLoss'))


def test_a_sync_fails_the_check(monkeypatch):
    monkeypatch.setattr(gpu_check, 'sync_errors', lambda device: _raise_sync())
    rows = gpu_check.compare(gpu_check.make_inputs(100, CPU), CPU)
    assert all(not r['ok'] and 'synchronizing' in r['error'] for r in rows)


def _raise_sync():
    raise RuntimeError('called a synchronizing CUDA operation')


def test_without_a_gpu_it_says_so(capsys):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    assert gpu_check.main([]) == 0
    assert 'no CUDA GPU' in capsys.readouterr().out
