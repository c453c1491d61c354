"""No hang, no mismatched collective: two gloo ranks, rank 1's images without
objects, every detector of the matrix in which one of our GHM losses is called,
and the equalized focal loss in the heads that call loss_cls on every level
(tests/ddp_no_objects.py). Many heads call their box loss only where they have
positives, so rank 1 skips calls that rank 0 makes."""
import subprocess
import sys

import pytest
import torch

from ..helpers import DETECTORS
from .conftest import ROOT

# GHM-C in every head that calls loss_cls (PAA refuses GHMCLoss at build), GFL,
# TOOD and RTMDet with quality targets, GHM-R in the heads that regress deltas
GHM_CELLS = [name for name, (_, deltas, expected) in DETECTORS.items()
             if name != 'PAA' and (expected == 'works' or deltas)]
EFL_CELLS = [f'{name}:EqualizedFocalLoss' for name in ('RetinaNet', 'FCOS', 'ATSS',
                                                         'FoveaBox')]
CELLS = GHM_CELLS + EFL_CELLS
# the job's bound: a hang fails the tests instead of stalling CI (the cells take
# about 4 s each on one CPU core per rank)
TIMEOUT_S = 60 + 45 * len(CELLS)


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp_no_objects')
    proc = subprocess.run([sys.executable, 'tests/ddp_no_objects.py', str(out),
                           str(TIMEOUT_S), *CELLS], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT_S + 60)
    return proc, out


def results(ranks, cell):
    proc, out = ranks
    files = [out / f'{cell}.rank{r}.pt' for r in (0, 1)]
    assert proc.returncode == 0 and all(f.exists() for f in files), (
        proc.stdout[-3000:] + proc.stderr[-3000:])
    rank0, rank1 = (torch.load(f, weights_only=False) for f in files)
    assert rank0['objects'] > 0 and rank1['objects'] == 0
    assert rank0['stats'].keys() == rank1['stats'].keys() and rank0['stats']
    for name, stat in rank0['stats'].items():
        assert torch.equal(stat, rank1['stats'][name]), name
    return rank0, rank1


@pytest.mark.parametrize('detector', GHM_CELLS)
def test_a_rank_without_objects_neither_hangs_nor_mismatches(ranks, detector):
    rank0, _ = results(ranks, detector)
    expected = {'loss_bbox'} if DETECTORS[detector][2] == 'not called' else {'loss_cls'}
    if DETECTORS[detector][1]:
        expected.add('loss_bbox')
    assert {name for name, n in rank0['calls'].items() if n} == expected
    for name, stat in rank0['stats'].items():
        assert (stat.sum() > 0) == (name.split('.')[1] in expected), name


@pytest.mark.parametrize('cell', EFL_CELLS)
def test_efl_statistics_are_equal_on_both_ranks(ranks, cell):
    rank0, rank1 = results(ranks, cell)
    assert rank0['calls']['loss_cls'] > 0 and rank1['calls']['loss_cls'] > 0
    stats = {name.rsplit('.', 1)[1]: stat for name, stat in rank0['stats'].items()
             if '.loss_cls.' in name}
    # both ranks' negatives, rank 0's positives only
    assert (stats['neg_grad'] > 0).all() and stats['pos_grad'].sum() > 0
    torch.testing.assert_close(
        stats['pos_neg'], (stats['pos_grad'] / (stats['neg_grad'] + 1e-10)).clamp(0, 1))
