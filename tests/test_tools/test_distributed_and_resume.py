"""Multi-process training (torchrun, gloo, 2 CPU ranks) and resume, via tools/train.py."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mmdet_ghm.functional import effective_number_weights

from .conftest import ROOT, data_options

DENSITY_KEYS = ('bbox_head.loss_cls.density', 'bbox_head.loss_bbox.density')


def write_config(tmp_path, toy, iters, sync=True):
    """The toy GHM config on the tiny set, with the per-rank dump hook."""
    path = tmp_path / 'cfg.py'
    opts = '\n'.join(f'# {o}' for o in data_options(toy, iters))
    path.write_text(f"""
_base_ = '{ROOT}/configs/toy/retinanet_r18_fpn_ghm-1500it_toy.py'
custom_imports = dict(imports=['mmdet_ghm', 'tests.rank_dump_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='DensityLoggerHook', interval=1), dict(type='RankDumpHook'),
                dict(type='SyncStatisticsHook')]
model = dict(bbox_head=dict(loss_cls=dict(sync_density={sync}),
                            loss_bbox=dict(sync_density={sync})))
{opts}
""")
    return str(path)


def train(config, work_dir, toy, iters, *extra, nproc=1, **env_vars):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **env_vars)
    launcher = ([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                 f'--nproc_per_node={nproc}'] if nproc > 1 else [sys.executable])
    args = launcher + ['tools/train.py', config, '--work-dir', str(work_dir),
                       '--launcher', 'pytorch' if nproc > 1 else 'none', *extra,
                       '--cfg-options', *data_options(toy, iters)]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.mark.parametrize('sync', [True, False])
def test_two_ranks_share_the_density_only_with_sync(toy, tmp_path, sync):
    train(write_config(tmp_path, toy, 2, sync), tmp_path, toy, 2, nproc=2)
    ranks = [torch.load(tmp_path / f'after_train_rank{r}.pt', weights_only=False)
             for r in (0, 1)]
    for key in DENSITY_KEYS:
        assert ranks[0][key].sum() > 0
        assert torch.equal(ranks[0][key], ranks[1][key]) == sync, key


def test_resume_restores_density_optimizer_and_iteration(toy, tmp_path):
    config = write_config(tmp_path, toy, 2)
    train(config, tmp_path, toy, 2)
    saved = torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=False)
    log = train(config, tmp_path, toy, 4, '--resume', str(tmp_path / 'iter_2.pth'))
    assert 'resumed' in log.lower() and 'Iter(train) [3/4]' in log
    resumed = torch.load(tmp_path / 'before_train_rank0.pt', weights_only=False)
    assert resumed['iter'] == 2
    for key in DENSITY_KEYS:
        assert torch.equal(resumed[key], saved['state_dict'][f'{key}.acc_sum'])
    saved_opt = saved['optimizer']['state']
    resumed_opt = resumed['optimizer']['state']
    assert saved_opt.keys() == resumed_opt.keys() and len(saved_opt) > 0
    for k in saved_opt:
        assert torch.equal(saved_opt[k]['exp_avg'], resumed_opt[k]['exp_avg'])


def test_resumed_run_equals_an_uninterrupted_one(toy, tmp_path):
    """2 iterations, save, resume, 2 more: the same weights, EMA buffers and
    losses as 4 iterations in one go (CPU, deterministic)."""
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    config = write_config(tmp_path, toy, 4)
    straight_log = train(config, straight, toy, 4)
    train(config, split, toy, 2)
    split_log = train(config, split, toy, 4, '--resume', str(split / 'iter_2.pth'))
    a = torch.load(straight / 'iter_4.pth', map_location='cpu', weights_only=False)
    b = torch.load(split / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0, atol=0, msg=key)
    for key in DENSITY_KEYS:
        assert a['state_dict'][f'{key}.acc_sum'].sum() > 0

    def losses(log, step):
        line = next(ln for ln in log.splitlines() if f'Iter(train) [{step}/4]' in ln)
        return [word for word in line.split() if word.startswith('loss')], line

    for step in (3, 4):
        (names, line), (_, resumed_line) = losses(straight_log, step), losses(split_log, step)
        for name in names:  # 'loss:', 'loss_cls:', 'loss_bbox:' and their values
            value = line.split(name)[1].split()[0]
            assert resumed_line.split(name)[1].split()[0] == value, (name, line, resumed_line)


def test_density_logger_logs_the_weights_the_loss_applied(toy, tmp_path):
    train(write_config(tmp_path, toy, 3), tmp_path, toy, 3)
    dumped = torch.load(tmp_path / 'after_train_rank0.pt', weights_only=False)
    logs = list(tmp_path.glob('*/vis_data/scalars.json'))
    records = [json.loads(line) for line in open(logs[0])]
    last = [r for r in records if any(k.startswith('ghm/') for k in r)][-1]
    assert last['step'] == 3
    for key in DENSITY_KEYS:
        applied = dumped[f'{key}.last_weights']
        logged = torch.tensor([last[f'ghm/{key}/weight_{i:02d}']
                               for i in range(len(applied))])
        assert applied.sum() > 0
        torch.testing.assert_close(logged, applied)
        ema = torch.tensor([last[f'ghm/{key}/bin_{i:02d}'] for i in range(len(applied))])
        torch.testing.assert_close(ema, dumped[key])
        # not the weights the EMA alone would give (tot of the batch, not of the EMA)
        nonempty = applied > 0
        from_ema = ema.sum() / ema[nonempty] / nonempty.sum()
        assert not torch.allclose(from_ema, applied[nonempty]), key
        # the stall signals of the last interval (one iteration, every level):
        # the largest weight covers the last call's, the share is a share
        assert last[f'ghm/{key}/max_weight'] >= float(applied.max())
        assert 0 < last[f'ghm/{key}/last_bin_share'] <= 1
        assert (tmp_path / f'density_{key.replace(".", "_")}.png').stat().st_size > 0


def write_cb_config(tmp_path, toy, iters):
    """The toy class-balanced config (counts from ClassCountsHook) on the tiny set."""
    path = tmp_path / 'cb_cfg.py'
    path.write_text(f"""
_base_ = '{ROOT}/configs/toy/retinanet_r18_fpn_cb-focal-1500it_toy.py'
custom_imports = dict(imports=['mmdet_ghm', 'tests.rank_dump_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='DensityLoggerHook', interval=1), dict(type='ClassCountsHook'),
                dict(type='RankDumpHook')]  # data_options sets the first's interval
""")
    return str(path)


def toy_class_counts(toy):
    anns = json.load(open(toy / 'annotations' / 'instances_train.json'))
    names = {c['id']: c['name'] for c in anns['categories']}
    classes = ('square', 'disk', 'triangle', 'cross', 'ring')
    return [sum(names[a['category_id']] == c for a in anns['annotations']) for c in classes]


def test_class_counts_hook_gives_the_effective_number_weights(toy, tmp_path):
    log = train(write_cb_config(tmp_path, toy, 1), tmp_path, toy, 1)
    counts = toy_class_counts(toy)
    assert 'ClassCountsHook: training instances per class: ' + ', '.join(
        f'{c}={n}' for c, n in zip(('square', 'disk', 'triangle', 'cross', 'ring'),
                                   counts)) in log
    weights = torch.load(tmp_path / 'after_train_rank0.pt',
                         weights_only=False)['bbox_head.loss_cls.class_weight']
    torch.testing.assert_close(weights, effective_number_weights(counts, 0.999))


def test_class_counts_hook_leaves_listed_counts_alone(toy, tmp_path):
    listed = [5, 4, 3, 2, 1]
    log = train(write_cb_config(tmp_path, toy, 1), tmp_path, toy, 1, '--cfg-options',
                f'model.bbox_head.loss_cls.class_counts={listed}')
    assert 'ClassCountsHook: training' not in log
    weights = torch.load(tmp_path / 'after_train_rank0.pt',
                         weights_only=False)['bbox_head.loss_cls.class_weight']
    torch.testing.assert_close(weights, effective_number_weights(listed, 0.999))


def test_class_counts_hook_gives_every_rank_rank0s_weights(tmp_path):
    out = tmp_path / 'counts'
    proc = subprocess.run([sys.executable, 'tests/class_counts_two_ranks.py', str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(f'{out}.rank{r}', weights_only=False) for r in (0, 1)]
    expected = effective_number_weights([3, 2, 1], 0.9)  # rank 0's instances
    for rank in ranks:
        assert rank['counts'] == [3, 2, 1]
        torch.testing.assert_close(rank['weight'], expected)
