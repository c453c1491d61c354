"""Every kernel specialisation the losses launch compiles to cubin for A100
(sm_80) and H100 (sm_90) with the installed triton, without a GPU."""
import json
import os
import subprocess
import sys

import pytest

from ..helpers import KERNELS
from ..test_tools.conftest import ROOT

pytestmark = KERNELS

DTYPES = {'torch.float32', 'torch.float16', 'torch.bfloat16'}
CLS_KERNELS = ('_ghmc_forward_kernel', '_ghmc_backward_kernel', '_focal_forward_kernel',
               '_focal_backward_kernel')
EFL_KERNELS = ('_equalized_focal_forward_kernel', '_equalized_focal_backward_kernel')


def layouts(specs, *flags):
    """The (logits dtype, flag values...) that the specialisations cover."""
    covered = set()
    for spec in specs:
        words = spec.split()
        values = dict(w.split('=') for w in words if '=' in w)
        covered.add((words[0], ) + tuple(values[f] for f in flags))
    return covered


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp('aot') / 'result.json'
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env['TRITON_CACHE_DIR'] = str(out.parent / 'cache')  # compile, not load
    proc = subprocess.run([sys.executable, 'tools/compile_kernels.py', '--arch', '80', '90',
                           '--json', str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_specialisation_compiles_for_sm80_and_sm90(compiled):
    assert compiled['status'] == 'compiled' and compiled['failures'] == []
    assert set(compiled['seconds_per_target']) == {'sm_80', 'sm_90'}
    assert compiled['specialisations']['sm_80'] == compiled['specialisations']['sm_90']
    specs = compiled['specialisations']['sm_90']
    assert set(specs) == {'_histogram_kernel', *CLS_KERNELS, *EFL_KERNELS}
    every = {(dtype, index, mode, reduce) for dtype in DTYPES for index in ('True', 'False')
             for mode in ('0', '1', '2') for reduce in ('True', 'False')}
    for kernel in CLS_KERNELS + EFL_KERNELS:
        # dtypes x index/dense targets x no/row/dense weights x reduce
        assert layouts(specs[kernel], 'TARGET_IS_INDEX', 'WEIGHT_MODE', 'REDUCE') == every
    # quality targets (labels, scores) in every dtype, in every kernel that reads targets
    for kernel in ('_histogram_kernel', ) + CLS_KERNELS + EFL_KERNELS:
        assert {(d, h) for d, i, h in layouts(specs[kernel], 'TARGET_IS_INDEX', 'HAS_SCORE')
                if i == 'True'} == {(d, h) for d in DTYPES for h in ('True', 'False')}
    for kernel in ('_focal_forward_kernel', '_focal_backward_kernel'):  # with and without alpha
        assert {a for *_, a in layouts(specs[kernel], 'USE_ALPHA')} == {'True', 'False'}
    for kernel in EFL_KERNELS:  # with and without alpha, in every dtype
        assert layouts(specs[kernel], 'USE_ALPHA') == {
            (d, a) for d in DTYPES for a in ('True', 'False')}
    # the equalized focal forward's tiles: every width tile_shape picks, in every dtype
    assert layouts(specs['_equalized_focal_forward_kernel'], 'BLOCK_COLS') == {
        (d, w) for d in DTYPES for w in ('8', '16', '32', '64', '128')}
    # GHM-C (NORM=0): every target and weight layout; GHM-R (NORM=1): dense deltas,
    # and its per-element bins written out
    hist = layouts(specs['_histogram_kernel'], 'NORM', 'TARGET_IS_INDEX', 'WEIGHT_MODE',
                   'WRITE_INDEX')
    assert {(d, i, m) for d, norm, i, m, _ in hist if norm == '0'} == {
        (d, i, m) for d in DTYPES for i in ('True', 'False') for m in ('0', '1', '2')}
    assert {(d, w) for d, norm, i, _, w in hist if norm == '1'} == {(d, 'True') for d in DTYPES}
    # GHM-R's CUDA path: no, (N,) and (N, 4) weights, as on a GPU (not the CPU's picked rows)
    ghmr = layouts(specs['_histogram_kernel'], 'NORM', 'WEIGHT_MODE')
    assert {(d, m) for d, norm, m in ghmr if norm == '1'} == {
        (d, m) for d in DTYPES for m in ('0', '1', '2')}


def test_compat_table_rows():
    from ..test_tools.conftest import load_tool
    compat = load_tool('triton_compat')
    kernels = {k: 2 for k in ('_histogram_kernel', *CLS_KERNELS)}
    results = [
        dict(triton='2.1.0', status='compiled', kernels={'sm_80': kernels, 'sm_90': kernels},
             seconds=300.0, seconds_per_target={'sm_80': 290.4, 'sm_90': 298.6}),
        dict(triton='2.0.0', status='torch', reason='triton 2.0.0 is older than 2.1'),
        dict(triton='3.9.0', status='failed', failures=[[80, 'GHMCLoss float16', 'boom']]),
    ]
    rows = compat.table(results, [80, 90]).splitlines()
    assert rows[2] == ('| 2.1.0 | 2.1 | kernels | all 5 kernels, 10 specialisations per '
                       'target (sm_80 290 s, sm_90 299 s) |')
    assert rows[3] == '| 2.0.0 |  | PyTorch | triton 2.0.0 is older than 2.1 |'
    assert rows[4] == '| 3.9.0 | 2.15 | FAILED | GHMCLoss float16: boom |'
