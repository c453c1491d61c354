"""Shared by the tool tests: run a tool or load it as a module, a tiny toy set,
and options pointing the toy configs at it."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(*args, cwd=ROOT):
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def load_tool(name):
    """tools/<name>.py as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    run('tools/make_toy_coco.py', '--out', str(root), '--train', '24', '--val', '8',
        '--seed', '1')
    return root


def data_options(root, iters):
    """cfg-options that point the toy config at ``root`` and shorten it."""
    opts = [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'custom_hooks.0.interval=1', 'train_dataloader.batch_size=4',
            'model.test_cfg.score_thr=0.0']  # an untrained model scores below 0.05
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}/', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{evaluator}.ann_file={root}/annotations/instances_val.json')
    return opts
