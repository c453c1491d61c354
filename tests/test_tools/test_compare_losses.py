"""tools/compare_losses.py: statistics over seeds, reuse of finished runs, schedule."""
import json
import math

import pytest
from mmengine.config import Config, DictAction

from .conftest import load_tool

compare_losses = load_tool('compare_losses')


def record(seed, mAP, diverged=False):
    metrics = {m: mAP for m in compare_losses.METRICS}
    return dict(variant='ghm', seed=seed, iters=10, options=[], minutes=2.0,
                diverged=diverged, **({} if diverged else metrics))


def test_summary_is_over_the_finished_runs_with_sample_std():
    runs = [record(0, 0.2), record(1, 0.4), record(2, 0.9), record(3, 0, diverged=True)]
    s = compare_losses.summarise(runs)
    assert (s['runs'], s['diverged']) == (4, 1)
    assert s['mAP']['mean'] == pytest.approx(0.5)
    assert s['mAP']['std'] == pytest.approx(math.sqrt((0.09 + 0.01 + 0.16) / 2))
    assert (s['mAP']['min'], s['mAP']['max']) == (0.2, 0.9)
    every_run_diverged = compare_losses.summarise([record(0, 0, diverged=True)])
    assert math.isnan(every_run_diverged['mAP']['mean'])


def test_a_finished_run_is_read_not_trained_again(tmp_path, monkeypatch):
    stored = record(1, 0.3)
    (tmp_path / 'run.json').write_text(json.dumps(stored))

    def no_training(*args, **kwargs):
        raise AssertionError('trained a run that was already finished')

    monkeypatch.setattr(compare_losses.subprocess, 'Popen', no_training)
    assert compare_losses.train_one('ghm', 1, 10, [], str(tmp_path), 1) == stored
    with pytest.raises(AssertionError, match='already finished'):  # other options
        compare_losses.train_one('ghm', 1, 10, ['a=1'], str(tmp_path), 1)


def test_schedule_is_stretched_to_the_iterations():
    cfg = Config.fromfile(compare_losses.toy_config('ghm'))
    parser = compare_losses.argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *compare_losses.schedule_options(400)])
    cfg.merge_from_dict(options.cfg_options)
    steps = cfg.param_scheduler[1]
    assert cfg.train_cfg.max_iters == cfg.train_cfg.val_interval == steps.end == 400
    assert steps.milestones == [300, 368]
    assert cfg.param_scheduler[0].type == 'LinearLR'  # the warm-up is kept


def test_collect_groups_every_stored_run_by_tag(tmp_path):
    for tag, seed, run in (('ghm', 1, record(1, 0.4)), ('ghm', 0, record(0, 0.2)),
                           ('ghm_mom0', 0, dict(record(0, 0.3), options=['x=0']))):
        (tmp_path / tag / f'seed{seed}').mkdir(parents=True)
        (tmp_path / tag / f'seed{seed}' / 'run.json').write_text(json.dumps(run))
    results = compare_losses.collect(str(tmp_path))
    assert [r['seed'] for r in results['ghm']['runs']] == [0, 1]
    assert results['ghm_mom0']['options'] == ['x=0']
    assert '| ghm_mom0 | 10 | 1 | 0 |' in compare_losses.table(results)
    (tmp_path / 'ghm' / 'seed2').mkdir()
    (tmp_path / 'ghm' / 'seed2' / 'run.json').write_text(json.dumps(
        dict(record(2, 0.1), iters=20)))
    with pytest.raises(ValueError, match='mixes runs'):
        compare_losses.collect(str(tmp_path))


def test_stall_signals_average_the_second_half_of_training(tmp_path):
    logged = tmp_path / '20260101_000000' / 'vis_data'
    logged.mkdir(parents=True)
    share = 'ghm/bbox_head.loss_bbox.density/last_bin_share'
    records = [{'step': 50, share: 0.9, 'grad_norm': 9.0},
               {'step': 100, share: 0.8, 'grad_norm': 4.0, 'loss': 1.0},
               {'step': 150, share: 0.6, 'grad_norm': 2.0, 'loss': 1.0},
               {'step': 150, 'coco/bbox_mAP': 0.5}]
    (logged / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records))
    signals = compare_losses.stall_signals(str(tmp_path))
    assert signals == {'loss_bbox/last_bin_share': pytest.approx(0.7),
                       'grad_norm': pytest.approx(3.0)}


def test_an_unknown_tag_names_the_stored_ones():
    with pytest.raises(SystemExit, match='no finished runs of ghm_x; the stored tags '
                       'are ghm'):
        compare_losses.per_run_table({'ghm': dict(runs=[])}, ['ghm_x'])


@pytest.mark.parametrize('message, finished', [(True, True), (False, True), (True, False)])
def test_a_model_that_detects_nothing_scores_zero(tmp_path, message, finished):
    logged = tmp_path / '20260101_000000' / 'vis_data'
    logged.mkdir(parents=True)
    records = [{'step': 5, 'loss': 2.0, 'loss_cls': 1.5, 'loss_bbox': 0.5},
               {'step': 10 if finished else 5, 'loss': 1.0, 'loss_cls': 0.9,
                'loss_bbox': 0.1}]
    (logged / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records))
    (tmp_path / 'train.out').write_text(
        'Evaluating bbox...\n' + (compare_losses.NO_DETECTIONS + '.\n' if message else ''))
    if not (message and finished):  # a log cut short, or another failure
        with pytest.raises(RuntimeError, match='no CocoMetric result'):
            compare_losses.final_metrics(str(tmp_path), 10)
        return
    metrics = compare_losses.final_metrics(str(tmp_path), 10)
    assert metrics['no_detections'] and metrics['loss_cls'] == 0.9
    assert all(metrics[m] == 0.0 for m in compare_losses.METRICS)


def test_a_failed_run_is_diverged_with_its_last_line(tmp_path):
    run = compare_losses.train_one('no_such', 0, 10, [], str(tmp_path), 1)
    assert run['diverged'] and 'retinanet_r18_fpn_no-such-1500it_toy.py' in run['error']
    assert json.loads((tmp_path / 'run.json').read_text()) == run


def test_machine_names_the_cpu_family_and_model(tmp_path):
    # two CPUs a virtual machine calls 'AMD EPYC' gave seed 0 different results:
    # the record tells them apart by the first processor's family and model
    import os
    cpuinfo = tmp_path / 'cpuinfo'
    first = ('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n'
             'model name\t: AMD EPYC\n\n')
    cpuinfo.write_text(first + first.replace(': 0', ': 1').replace('25', '23'))
    cores = os.cpu_count()
    assert compare_losses.machine(str(cpuinfo)) == f'AMD EPYC (family 25, model 17), {cores} cores'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Some CPU\n\n')
    assert compare_losses.machine(str(cpuinfo)) == f'Some CPU, {cores} cores'
