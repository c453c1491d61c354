"""tools/benchmark_losses.py: what its table divides by what (not the speed)."""
import json
import math
import subprocess
import sys

from .conftest import ROOT, load_tool, run


def test_round_robin_gives_each_step_its_runs():
    bench = load_tool('benchmark_losses')
    calls = []
    steps = {name: (lambda name=name: calls.append(name))
             for name in ('GHMCLoss (ours)', 'BCE floor', 'mmdet GHMC')}
    times = bench.interleaved_medians(steps, 5, bench.torch.device('cpu'))
    assert set(times) == set(steps)
    # one warm-up each, then round robin; mmdet's GHMC stops at 3 timed runs
    assert calls[:3] == list(steps)
    assert calls[3:6] == list(steps)
    assert calls.count('GHMCLoss (ours)') == 6 and calls.count('mmdet GHMC') == 4


def test_table_divides_each_loss_by_its_floor_and_mmdet(tmp_path):
    out = tmp_path / 'bench.json'
    run('tools/benchmark_losses.py', '--anchors', '300', '--repeat', '1', '--json', str(out))
    rows = json.loads(out.read_text())['results']
    assert {(r['size'], r['anchors']) for r in rows} == {('300', 300)}
    ms = {(r['group'], r['role']): r['median_ms'] for r in rows}
    ours = {r['group']: r for r in rows if r['role'] == 'ours'}
    assert set(ours) == {'GHM-C', 'GHM-R', 'Focal', 'CB focal', 'EFL'}
    assert ours['EFL']['ours/our focal'] == ours['EFL']['median_ms'] / ms[('Focal', 'ours')]
    for group, row in ours.items():
        assert row['ours/floor'] == row['median_ms'] / ms[(group, 'floor')]
        assert row['ours/mmdet'] > 0
        # ours from the pass of mmdet's losses, over mmdet's plain loss
        assert math.isclose(row['ours/plain'] / row['ours/mmdet'],
                            ms[(group, 'mmdet')] / ms[(group, 'plain')],
                            rel_tol=8 * sys.float_info.epsilon)
    # one measurement of the BCE floor (and of mmdet's sigmoid cross-entropy)
    # serves the four classification losses
    for role in ('floor', 'plain'):
        assert (ms[('GHM-C', role)] == ms[('Focal', role)] == ms[('CB focal', role)]
                == ms[('EFL', role)])
        assert ms[('GHM-R', role)] != ms[('GHM-C', role)]
    assert ms[('GHM-R', 'plain')] != ms[('GHM-R', 'floor')]


def test_anchor_counts_must_be_positive():
    out = subprocess.run([sys.executable, 'tools/benchmark_losses.py', '--anchors', '300', '0'],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert '--anchors must be positive counts' in out.stderr
