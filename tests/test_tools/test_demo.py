"""tools/demo.py: the closing lines put the run's mAP next to the README's range."""
import json
import os.path as osp
import sys

import pytest

from .conftest import load_tool

demo = load_tool('demo')


def measured_runs(*maps):
    return [dict(variant='ghm', seed=i, iters=1500, options=[], minutes=9.0, threads=1,
                 machine='AMD EPYC, 2 cores', diverged=False, mAP=m, AP75=m, AP_ring=m,
                 AP_cross=m) for i, m in enumerate(maps)]


@pytest.mark.parametrize('mAP, verdict', [
    (0.61, 'within it'), (0.59, 'below it. The range was measured on AMD EPYC, 2 cores only'),
    (0.73, 'above it: fine. The range was measured on AMD EPYC, 2 cores only')])
def test_demo_prints_the_run_next_to_the_measured_range(tmp_path, monkeypatch, capsys,
                                                        mAP, verdict):
    results = tmp_path / 'toy_results.json'
    results.write_text(json.dumps({'ghm_mu0.2': dict(
        variant='ghm', iters=1500, options=['model.bbox_head.loss_bbox.mu=0.2'],
        runs=measured_runs(0.64, 0.66, 0.68))}))
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'density_bbox_head_loss_cls_density.png').write_bytes(b'png')
    (work_dir / 'run.json').write_text('{}')  # an earlier demo's result
    trained = {}

    def train_one(variant, seed, iters, options, work_dir, threads, echo):
        assert not osp.exists(osp.join(work_dir, 'run.json'))  # trains again
        trained.update(variant=variant, seed=seed, iters=iters, options=options,
                       threads=threads)
        return dict(measured_runs(mAP)[0], AP50=0.9, minutes=8.0)

    monkeypatch.setattr(demo, 'MEASURED', str(results))
    monkeypatch.setattr(demo, 'train_one', train_one)
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--work-dir', str(work_dir)])
    demo.main()
    out = capsys.readouterr().out
    assert trained == dict(variant='ghm', seed=0, iters=1500, threads=1,
                           options=['model.bbox_head.loss_bbox.mu=0.2'])
    assert f'bbox mAP {mAP:.3f}' in out
    assert ('ghm_mu0.2), seeds 0..2 on AMD EPYC, 2 cores: bbox mAP 0.660 ± 0.020 (runs '
            '0.640 to 0.680), range mean ± 3 std [0.600, 0.720]') in out
    assert verdict in out
    assert 'density_bbox_head_loss_cls_density.png' in out


def test_demo_names_the_measured_rows_for_an_unknown_tag(tmp_path, monkeypatch):
    results = tmp_path / 'toy_results.json'
    results.write_text(json.dumps({'focal': {}}))
    monkeypatch.setattr(demo, 'MEASURED', str(results))
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--tag', 'ghm_level'])
    with pytest.raises(SystemExit, match="no row 'ghm_level'.*measured rows: focal"):
        demo.main()
