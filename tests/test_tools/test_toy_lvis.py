"""The long-tailed LVIS-format toy set (tools/make_toy_lvis.py), LVIS's metric on
it, class counts under repeat-factor sampling, and the LVIS configs trained through
mmdet's own tools/train.py."""
import json
import os.path as osp
from collections import Counter

import numpy as np
import pytest
import torch

from mmdet_ghm.hooks.class_counts_hook import dataset_class_counts
from mmdet_ghm.hooks.density_logger_hook import frequency_groups, plot_gradient_ratio

from .conftest import ROOT, load_tool, run

make_toy_lvis = load_tool('make_toy_lvis')
CLASSES = make_toy_lvis.CLASSES


@pytest.fixture(scope='session')
def toy_lvis(tmp_path_factory):
    """The default set (600 training images): it has all three frequency groups."""
    root = tmp_path_factory.mktemp('toy_lvis')
    run('tools/make_toy_lvis.py', '--out', str(root), '--val', '60')
    return root


@pytest.fixture(scope='session')
def tiny_lvis(tmp_path_factory):
    """Seven training images (every class once, one three times), four to validate."""
    root = tmp_path_factory.mktemp('tiny_lvis')
    run('tools/make_toy_lvis.py', '--out', str(root), '--train', '7', '--val', '4',
        '--most', '3', '--seed', '1')
    return root


def load(root, split):
    with open(root / 'annotations' / f'lvis_v1_{split}.json') as f:
        return json.load(f)


def test_toy_lvis_is_lvis_v1_and_long_tailed(toy_lvis, tmp_path):
    train, val = load(toy_lvis, 'train'), load(toy_lvis, 'val')
    assert [c['name'] for c in train['categories']] == list(CLASSES)
    assert train['categories'] == val['categories']  # the training counts, in both
    images = Counter()
    for image_id, cat in {(a['image_id'], a['category_id']) for a in train['annotations']}:
        images[cat] += 1
    instances = Counter(a['category_id'] for a in train['annotations'])
    for cat in train['categories']:
        assert (cat['image_count'], cat['instance_count']) == (images[cat['id']],
                                                               instances[cat['id']])
        n = cat['image_count']
        assert cat['frequency'] == ('r' if n <= 10 else 'c' if n <= 100 else 'f')
    groups = Counter(c['frequency'] for c in train['categories'])
    assert min(groups[g] for g in 'rcf') >= 3, groups
    counts = sorted(instances.values())
    assert counts[-1] >= 100 * counts[0]  # a steep tail
    for split in (train, val):  # every class not in an image is verified absent
        present = {}
        for a in split['annotations']:
            present.setdefault(a['image_id'], set()).add(a['category_id'])
        for image in split['images']:
            assert set(image['neg_category_ids']) == set(range(1, len(CLASSES) + 1)) - \
                present.get(image['id'], set())
            assert image['not_exhaustive_category_ids'] == []
            assert osp.exists(toy_lvis / image['coco_url'].replace(make_toy_lvis.URL, ''))
    assert min(Counter(a['category_id'] for a in val['annotations']).values()) >= 1
    # deterministic from the seed
    run('tools/make_toy_lvis.py', '--out', str(tmp_path), '--val', '60')
    assert load(tmp_path, 'train') == train and load(tmp_path, 'val') == val
    assert (tmp_path / 'train2017' / '000007.png').read_bytes() == \
        (toy_lvis / 'train2017' / '000007.png').read_bytes()


def test_toy_lvis_refuses_more_objects_than_fit(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, 'tools/make_toy_lvis.py', '--out', str(tmp_path),
                          '--train', '5', '--most', '100'], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode != 0 and 'do not fit into 5 images' in out.stderr


def lvis_dataset(root, split, classes=CLASSES):
    from mmdet.datasets import LVISV1Dataset
    return LVISV1Dataset(data_root=str(root), ann_file=f'annotations/lvis_v1_{split}.json',
                         data_prefix=dict(img=''), filter_cfg=None, pipeline=[],
                         metainfo=dict(classes=classes), test_mode=split == 'val')


def test_class_counts_under_repeat_factor_sampling(toy_lvis):
    """ClassCountsHook's counts are the file's instance_count per class, in label
    order, under ClassBalancedDataset's repeats; tools/class_counts.py agrees."""
    from mmengine.dataset import ClassBalancedDataset
    dataset = lvis_dataset(toy_lvis, 'train')
    balanced = ClassBalancedDataset(dataset, oversample_thr=0.17)
    assert len(balanced) > 1.5 * len(dataset)  # the rare classes' images repeated
    per_file = [c['instance_count'] for c in load(toy_lvis, 'train')['categories']]
    assert dataset_class_counts(balanced, len(CLASSES)) == per_file
    out = run('tools/class_counts.py', str(toy_lvis / 'annotations' / 'lvis_v1_train.json'))
    assert json.loads(out.strip().splitlines()[-1].split('=', 1)[1]) == per_file
    # per image, as LVIS's frequency groups count (DensityLoggerHook's EFL groups)
    images = [c['image_count'] for c in load(toy_lvis, 'train')['categories']]
    assert images != per_file
    assert dataset_class_counts(balanced, len(CLASSES), per_image=True) == images
    frequency = {'r': 'rare', 'c': 'common', 'f': 'frequent'}
    expected = {}
    for label, category in enumerate(load(toy_lvis, 'train')['categories']):
        expected.setdefault(frequency[category['frequency']], []).append(label)
    assert frequency_groups(images) == expected and len(expected) == 3


def test_frequency_group_bounds_and_plot(tmp_path):
    counts = [0, 1, 10, 11, 100, 101, 500]
    assert frequency_groups(counts) == dict(rare=[0, 1, 2], common=[3, 4], frequent=[5, 6])
    assert frequency_groups([3, 4]) == dict(rare=[0, 1])
    history = dict(iter=[1, 2], rare=[0.5, 0.2], common=[0.7, 0.6], frequent=[1.0, 0.9])
    plot_gradient_ratio('bbox_head.loss_cls', torch.linspace(0, 1, 7), counts, history,
                        str(tmp_path / 'efl.png'))
    assert (tmp_path / 'efl.png').stat().st_size > 0


def detections(dataset, relabel=None):
    """mmdet data samples predicting every ground-truth box of ``dataset`` (score
    1), their class changed to ``relabel[label]`` where given."""
    samples = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        boxes = [inst['bbox'] for inst in info['instances']]
        labels = [inst['bbox_label'] for inst in info['instances']]
        labels = [(relabel or {}).get(label, label) for label in labels]
        samples.append(dict(img_id=info['img_id'], ori_shape=(info['height'], info['width']),
                            pred_instances=dict(
                                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                scores=torch.ones(len(boxes)),
                                labels=torch.tensor(labels, dtype=torch.long))))
    return samples


def test_lvis_metric_reports_the_frequency_groups(toy_lvis):
    """AP, APr, APc and APf of the same metric users get in the configs, under
    this numpy: exact detections score 1 in every group; detections of the rare
    classes given another (frequent) class's label score 0 on the rare group
    only."""
    from mmdet_ghm.evaluation import NumpyCompatLVISMetric
    dataset = lvis_dataset(toy_lvis, 'val')
    categories = load(toy_lvis, 'train')['categories']
    rare = [i for i, c in enumerate(categories) if c['frequency'] == 'r']
    frequent = next(i for i, c in enumerate(categories) if c['frequency'] == 'f')

    def evaluate(samples):
        metric = NumpyCompatLVISMetric(
            ann_file=str(toy_lvis / 'annotations' / 'lvis_v1_val.json'), metric='bbox')
        metric.dataset_meta = dataset.metainfo
        metric.process({}, samples)
        return metric.evaluate(len(samples))

    exact = evaluate(detections(dataset))
    assert all(exact[f'lvis/bbox_{k}'] == 1.0 for k in ('AP', 'APr', 'APc', 'APf')), exact
    assert 'float' not in vars(np) or np.__version__ < '1.24'  # numpy as it was found
    wrong_rare = evaluate(detections(dataset, relabel={r: frequent for r in rare}))
    assert wrong_rare['lvis/bbox_APr'] == 0.0
    assert wrong_rare['lvis/bbox_APc'] == 1.0
    assert 0 < wrong_rare['lvis/bbox_APf'] < 1  # the frequent class got false positives


def test_mmdets_lvis_metric_is_what_needs_the_alias(toy_lvis):
    """Why NumpyCompatLVISMetric exists: where numpy has no np.float, mmdet's own
    metric fails in lvis's evaluation. (When lvis stops calling np.float, this
    fails, and the alias can go.)"""
    if 'float' in vars(np):
        pytest.skip(f'numpy {np.__version__} still has np.float')
    from mmdet.evaluation import LVISMetric
    dataset = lvis_dataset(toy_lvis, 'val')
    metric = LVISMetric(ann_file=str(toy_lvis / 'annotations' / 'lvis_v1_val.json'),
                        metric='bbox')
    metric.dataset_meta = dataset.metainfo
    samples = detections(dataset)
    metric.process({}, samples)
    with pytest.raises(AttributeError, match="no attribute 'float'"):
        metric.evaluate(len(samples))


def tiny_options(root, size=320):
    """cfg-options that point an LVIS config at the tiny set, with its classes,
    at ``size`` px, one epoch of two iterations (batch 4 of 7 images)."""
    classes = '(' + ','.join(CLASSES) + ')'
    opts = ['model.backbone.init_cfg=None',  # nothing is downloaded
            f'model.bbox_head.num_classes={len(CLASSES)}',
            'train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
            f'train_dataloader.dataset.dataset.metainfo.classes={classes}',
            f'val_dataloader.dataset.metainfo.classes={classes}',
            f'train_dataloader.dataset.dataset.data_root={root}/',
            f'val_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/annotations/lvis_v1_val.json',
            f'train_dataloader.dataset.dataset.pipeline.2.scales=[({size},{size})]',
            f'val_dataloader.dataset.pipeline.1.scale=({size},{size})',
            'default_hooks.logger.interval=1']
    for loader in ('train_dataloader', 'val_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    return opts


LVIS_CONFIGS = {'focal': 'SigmoidFocalLoss', 'ghm': 'GHMCLoss',
                'cb-focal': 'ClassBalancedFocalLoss', 'efl': 'EqualizedFocalLoss'}


@pytest.mark.parametrize('variant', LVIS_CONFIGS)
def test_lvis_config_trains_with_mmdets_own_train_py(variant, tiny_lvis, tmp_path):
    """The LVIS v1 config, as a user with LVIS runs it (mmdet's tools/train.py,
    repeat-factor sampling, LVIS's metric), on the tiny LVIS-format set: two
    iterations, then the evaluation with APr / APc / APf."""
    import mmdet
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    config = osp.join(ROOT, 'configs', 'lvis', f'retinanet_r50_fpn_{variant}-1x_lvis-v1.py')
    options = tiny_options(tiny_lvis)
    if variant == 'efl':  # the loss's statistics are per class
        options.append(f'model.bbox_head.loss_cls.num_classes={len(CLASSES)}')
    log = run(train_py, config, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
              *options, cwd=str(tmp_path))
    assert 'Epoch(train) [1][2/2]' in log
    assert all(f'lvis/bbox_{k}:' in log for k in ('AP', 'APr', 'APc', 'APf'))
    state = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    if variant == 'cb-focal':  # counted from the annotations, each once
        counts = [c['instance_count'] for c in load(tiny_lvis, 'train')['categories']]
        assert f'ClassCountsHook: training instances per class: {CLASSES[0]}=' in log
        assert state['bbox_head.loss_cls.class_weight'].shape == (len(CLASSES), )
        beta = 0.9999  # the config's
        effective = (1 - beta ** torch.tensor(counts, dtype=torch.float64)) / (1 - beta)
        weights = 1 / effective
        torch.testing.assert_close(state['bbox_head.loss_cls.class_weight'].double(),
                                   weights * len(CLASSES) / weights.sum(),
                                   rtol=torch.finfo(torch.float32).eps, atol=0)
    if variant == 'ghm':
        assert state['bbox_head.loss_cls.density.acc_sum'].sum() > 0  # GHM-C trained
    if variant == 'efl':  # two iterations' statistics folded in by SyncStatisticsHook
        statistics = {k.split('.')[-1]: v for k, v in state.items() if '.statistics.' in k}
        assert (statistics['neg_grad'] > 0).all() and statistics['pos_grad'].sum() > 0
        torch.testing.assert_close(
            statistics['pos_neg'],
            (statistics['pos_grad'] / (statistics['neg_grad'] + 1e-10)).clamp(0, 1))


@pytest.mark.parametrize('variant', ['cb-focal', 'efl'])
def test_toy_lvis_config_trains_and_evaluates(variant, tiny_lvis, tmp_path):
    """The toy-LVIS configs that tools/compare_losses.py --dataset lvis trains."""
    from .conftest import data_options
    config = f'configs/toy_lvis/retinanet_r18_fpn_{variant}-1000it_toy-lvis.py'
    opts = [o for o in data_options(tiny_lvis, 2) if 'ann_file' not in o
            and not o.startswith('train_dataloader.dataset.data_root')]
    opts += [f'train_dataloader.dataset.dataset.data_root={tiny_lvis}/',
             f'val_evaluator.ann_file={tiny_lvis}/annotations/lvis_v1_val.json',
             f'test_evaluator.ann_file={tiny_lvis}/annotations/lvis_v1_val.json']
    log = run('tools/train.py', config, '--work-dir', str(tmp_path), '--cfg-options', *opts)
    compare_losses = load_tool('compare_losses')
    metrics = compare_losses.final_metrics(str(tmp_path), 2, 'lvis')
    assert set(compare_losses.LVIS_METRICS) <= set(metrics), log[-2000:]
    assert all(0 <= metrics[m] <= 1 for m in ('mAP', 'APr'))
    if variant == 'efl':  # DensityLoggerHook's group means of the gradient ratio
        state = torch.load(tmp_path / 'iter_2.pth', map_location='cpu',
                           weights_only=False)['state_dict']
        ratio = state['bbox_head.loss_cls.statistics.pos_neg']
        records = [json.loads(line) for path in tmp_path.glob('*/vis_data/scalars.json')
                   for line in open(path)]
        logged = [r for r in records if 'efl/bbox_head.loss_cls/g_rare' in r]
        assert [r['step'] for r in logged] == [1, 2]
        # the tiny set has every class in 1 to 3 images: all rare
        assert not any('g_common' in k or 'g_frequent' in k for k in logged[-1])
        torch.testing.assert_close(logged[-1]['efl/bbox_head.loss_cls/g_rare'],
                                   float(ratio.mean()))
        assert (tmp_path / 'efl_bbox_head_loss_cls.png').stat().st_size > 0
