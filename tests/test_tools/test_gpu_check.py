"""tools/gpu_check.py's comparison, run here by Triton's interpreter on the CPU,
and its one command where mmdet, mmengine and mmcv do not import (a bare GPU
machine has torch and triton only)."""
import importlib
import os
import subprocess
import sys
import time

import pytest
import torch

from ..helpers import RUNS_KERNELS
from .conftest import ROOT, load_tool

gpu_check = load_tool('gpu_check')

CPU = torch.device('cpu')
LOSSES = ['GHMCLoss', 'GHMRLoss', 'SigmoidFocalLoss', 'ClassBalancedFocalLoss',
          'EqualizedFocalLoss']

# A sitecustomize that makes mmdet, mmengine and mmcv look uninstalled to every
# import of the process it starts in (put on PYTHONPATH, it runs before the tool).
HIDE_MMDET = """import sys


class HideMmdet:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition('.')[0] in ('mmdet', 'mmengine', 'mmcv'):
            raise ModuleNotFoundError(f'No module named {name!r} (hidden)', name=name)
        return None


sys.meta_path.insert(0, HideMmdet)
"""
ABSENT = 'gpu_check: mmdet does not import here'


def run_without_mmdet(tmp_path, args, **env):
    """``python *args`` from the repo root with mmdet, mmengine and mmcv hidden."""
    (tmp_path / 'sitecustomize.py').write_text(HIDE_MMDET)
    environ = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    environ['PYTHONPATH'] = os.pathsep.join(
        [str(tmp_path)] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    environ.update(env)
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=environ,
                         capture_output=True, text=True, timeout=600)
    return out.returncode, out.stdout + out.stderr


def test_the_command_runs_without_mmdet(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: the command would run the whole check')
    code, out = run_without_mmdet(tmp_path, ['tools/gpu_check.py'])
    assert code == 0, out
    assert ABSENT in out and "No module named 'mmdet' (hidden)" in out
    assert 'no CUDA GPU here' in out


@RUNS_KERNELS
def test_the_comparison_runs_without_mmdet(tmp_path):
    script = ('import sys; sys.path.insert(0, "tools"); import gpu_check, torch; '
              'sys.exit(gpu_check.check(torch.device("cpu"), 300))')
    code, out = run_without_mmdet(tmp_path, ['-c', script], TRITON_INTERPRET='1')
    assert code == 0, out
    assert ABSENT in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in LOSSES}
    assert list(rows) == LOSSES
    assert all(row[4] == 'yes' for row in rows.values()), out


@RUNS_KERNELS
def test_kernels_match_the_torch_implementation(capsys):
    assert gpu_check.check(CPU, anchors=300) == 0
    rows = gpu_check.compare(gpu_check.make_inputs(300, CPU), CPU)
    assert [r['loss'] for r in rows] == LOSSES
    for row in rows:
        assert row['ok'] and row['value'] <= gpu_check.RTOL and row['grad'] <= gpu_check.RTOL
    assert {r['loss'] for r in rows if 'ema' in r} == {'GHMCLoss', 'GHMRLoss',
                                                       'EqualizedFocalLoss'}
    assert 'GHMCLoss' in capsys.readouterr().out


@RUNS_KERNELS
@pytest.mark.parametrize('kernel', ['ghmc_triton.ghmc_weighted_bce',
                                    'focal_triton.sigmoid_focal_loss'])
def test_a_wrong_kernel_fails_the_check(monkeypatch, capsys, kernel):
    module, name = kernel.split('.')
    module = importlib.import_module(f'mmdet_ghm.ops.{module}')
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: real(*a, **k) * (1 + 1e-4))
    assert gpu_check.check(CPU, anchors=300) == 1
    assert ' NO ' in capsys.readouterr().out


@RUNS_KERNELS
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


@RUNS_KERNELS
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


def cpu_time(fn, pred, args, kwargs, repeat=1):
    """gpu_check.cuda_time on the CPU clock, one call; ours for GHM-R raises."""
    if isinstance(fn, gpu_check.load_losses()[0].GHMRLoss):
        raise RuntimeError('out of memory (test)')
    x = pred.detach().requires_grad_()
    start = time.perf_counter()
    fn(x, *args, **kwargs).backward()
    return time.perf_counter() - start


@RUNS_KERNELS
@pytest.mark.parametrize('with_mmdet', [True, False])
def test_a_failing_timing_leaves_the_others(monkeypatch, capsys, with_mmdet):
    monkeypatch.setattr(gpu_check, 'cuda_time', cpu_time)
    monkeypatch.setattr(gpu_check, 'bandwidth_reference',
                        lambda device: (1e12, 'peak: share of 1000 GB/s (test)'))
    inp = gpu_check.make_inputs(300, CPU)
    times, line = gpu_check.timings(inp, CPU, with_mmdet=with_mmdet)
    assert list(times) == LOSSES
    assert 'ms' not in times['GHMRLoss']
    assert times['GHMRLoss']['errors'] == ['ms: RuntimeError: out of memory (test)']
    assert ('mmdet_ms' in times['GHMRLoss']) == with_mmdet
    for name in ('GHMCLoss', 'SigmoidFocalLoss', 'ClassBalancedFocalLoss'):
        row = times[name]
        assert not row['errors'] and row['x_bce'] == row['ms'] / row['bce_ms']
        assert row['peak_share'] == row['GBps'] * 1e9 / 1e12
        assert ('mmdet_ms' in row) == with_mmdet
    checks = gpu_check.compare(inp, CPU)
    assert gpu_check.failures(checks, times) == ['GHMRLoss']
    gpu_check.print_table(checks, times, [line])
    out = capsys.readouterr().out
    assert '    timing ms: RuntimeError: out of memory (test)' in out
    focal = next(row for row in out.splitlines() if row.startswith('SigmoidFocalLoss'))
    columns = focal.split()  # loss value grad EMA ok ms x-BCE BCE mmdet GB/s peak
    assert len(columns) == 11 and '-' not in columns[5:8] + columns[9:]
    assert (columns[8] == '-') != with_mmdet


def test_wide_numbers_keep_their_columns(capsys):
    # A slow run (the interpreter on a loaded CPU) gives ms and ratios wider
    # than their headers; each must still read as one whitespace-separated cell.
    check = {'loss': 'GHMCLoss', 'value': 1e-7, 'grad': 2e-7, 'ema': 3e-7, 'ok': True}
    wide = {'ms': 12345.678, 'x_bce': 10531.3, 'bce_ms': 1.17, 'mmdet_ms': 98765.4,
            'GBps': 1234567.0, 'peak_share': 123.45, 'errors': []}
    gpu_check.print_table([check], {'GHMCLoss': wide})
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith('GHMCLoss'))
    assert row.split() == ['GHMCLoss', '1.0e-07', '2.0e-07', '3.0e-07', 'yes', '12345.68',
                           '10531.30', '1.17', '98765.40', '1234567', '12345%']
