"""tools/make_toy_coco.py -> tools/train.py -> tools/test.py on a tiny toy set."""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmdet_ghm.hooks.class_counts_hook import dataset_class_counts

from .conftest import ROOT, data_options, run

def test_make_toy_coco_is_deterministic_and_long_tailed(toy, tmp_path):
    run('tools/make_toy_coco.py', '--out', str(tmp_path), '--train', '24', '--val', '8',
        '--seed', '1')
    for split in ('train', 'val'):
        a = json.load(open(toy / 'annotations' / f'instances_{split}.json'))
        b = json.load(open(tmp_path / 'annotations' / f'instances_{split}.json'))
        assert a == b
    assert (toy / 'train' / '000001.png').read_bytes() == \
        (tmp_path / 'train' / '000001.png').read_bytes()


def test_label_noise_changes_only_the_training_annotations(toy, tmp_path):
    share = 0.5
    out = run('tools/make_toy_coco.py', '--out', str(tmp_path), '--train', '24', '--val',
              '8', '--seed', '1', '--label-noise', str(share))
    val = 'annotations/instances_val.json'
    assert json.load(open(toy / val)) == json.load(open(tmp_path / val))
    assert (toy / 'train' / '000003.png').read_bytes() == \
        (tmp_path / 'train' / '000003.png').read_bytes()
    clean = json.load(open(toy / 'annotations' / 'instances_train.json'))['annotations']
    noisy = json.load(open(tmp_path / 'annotations' / 'instances_train.json'))['annotations']
    assert [a['id'] for a in clean] == [a['id'] for a in noisy]
    relabelled = sum(a['category_id'] != b['category_id'] for a, b in zip(clean, noisy))
    jittered = sum(a['bbox'] != b['bbox'] for a, b in zip(clean, noisy))
    assert f'{relabelled} boxes relabelled, {jittered} jittered' in out
    n = len(clean)  # each a binomial(n, share): within 4 standard deviations
    for changed in (relabelled, jittered):
        assert abs(changed - n * share) <= 4 * (n * share * (1 - share)) ** 0.5, out
    for a in noisy:
        x, y, w, h = a['bbox']
        assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= 160 and y + h <= 160
        assert a['area'] == w * h


def test_label_noise_must_be_a_share(tmp_path):
    import subprocess
    import sys
    from .conftest import ROOT
    out = subprocess.run([sys.executable, 'tools/make_toy_coco.py', '--out', str(tmp_path),
                          '--label-noise', '20'], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and 'must be a share in [0, 1]' in out.stderr


def test_default_toy_set_is_long_tailed(tmp_path):
    out = run('tools/make_toy_coco.py', '--out', str(tmp_path), '--val', '1')
    anns = json.load(open(tmp_path / 'annotations' / 'instances_train.json'))
    counts = torch.bincount(torch.tensor([a['category_id'] - 1 for a in anns['annotations']]))
    assert counts.max() >= 15 * counts.min() > 0, out
    with_objects = {a['image_id'] for a in anns['annotations']}
    assert len(with_objects) < len(anns['images'])  # some images have no object
    sizes = [max(a['bbox'][2:]) for a in anns['annotations']]
    assert min(sizes) < 12 and max(sizes) > 48


def test_class_counts_tool_and_hook_agree(toy):
    out = run('tools/class_counts.py', str(toy / 'annotations' / 'instances_train.json'))
    listed = json.loads(out.strip().splitlines()[-1].split('=', 1)[1])
    from mmdet.datasets import CocoDataset
    dataset = CocoDataset(data_root=str(toy), ann_file='annotations/instances_train.json',
                          data_prefix=dict(img='train/'), filter_cfg=None, pipeline=[],
                          metainfo=dict(classes=('square', 'disk', 'triangle', 'cross',
                                                 'ring')))
    assert dataset_class_counts(dataset, 5) == listed
    assert sum(listed) > 0


def test_train_then_test(toy, tmp_path):
    work = tmp_path / 'ghm'
    log = run('tools/train.py', 'configs/toy/retinanet_r18_fpn_ghm-1500it_toy.py', '--work-dir', str(work),
              '--cfg-options', *data_options(toy, 3))
    assert 'coco/bbox_mAP' in log
    assert (work / 'density_bbox_head_loss_cls_density.png').stat().st_size > 0
    assert (work / 'density_bbox_head_loss_bbox_density.png').stat().st_size > 0
    checkpoint = work / 'iter_3.pth'
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    assert state['bbox_head.loss_cls.density.acc_sum'].sum() > 0
    log = run('tools/test.py', 'configs/toy/retinanet_r18_fpn_ghm-1500it_toy.py', str(checkpoint),
              '--work-dir', str(tmp_path / 'test'), '--out', str(tmp_path / 'dets.pkl'),
              '--cfg-options', *data_options(toy, 3))
    assert 'bbox_mAP_copypaste' in log
    assert (tmp_path / 'dets.pkl').stat().st_size > 0


def test_class_balanced_counts_from_hook(toy, tmp_path):
    log = run('tools/train.py', 'configs/toy/retinanet_r18_fpn_cb-focal-1500it_toy.py', '--work-dir',
              str(tmp_path), '--cfg-options', *data_options(toy, 1))
    assert 'ClassCountsHook: training instances per class: square=' in log
    state = torch.load(tmp_path / 'iter_1.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['bbox_head.loss_cls.class_weight'].shape == (5, )
    # testing needs neither the training data nor the counts: the checkpoint has them
    log = run('tools/test.py', 'configs/toy/retinanet_r18_fpn_cb-focal-1500it_toy.py',
              str(tmp_path / 'iter_1.pth'), '--work-dir', str(tmp_path / 'test'),
              '--cfg-options', *data_options(toy, 1),
              'train_dataloader.dataset.data_root=/nonexistent/')
    assert 'bbox_mAP_copypaste' in log and 'ClassCountsHook: training' not in log


def test_mmdets_own_train_py_runs_our_config(toy, tmp_path):
    """custom_imports in our config is all mmdet's own tools/train.py needs."""
    import mmdet
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    config = osp.join(ROOT, 'configs', 'toy', 'retinanet_r18_fpn_ghm-1500it_toy.py')
    log = run(train_py, config, '--work-dir', str(tmp_path / 'work'),
              '--cfg-options', *data_options(toy, 2), cwd=str(tmp_path))
    assert 'coco/bbox_mAP' in log
    state = torch.load(tmp_path / 'work' / 'iter_2.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['bbox_head.loss_cls.density.acc_sum'].sum() > 0  # our GHMCLoss trained


def test_dist_train_runs_from_the_users_directory(toy, tmp_path):
    """A config and work dir relative to the user's project, not to this repository."""
    (tmp_path / 'my_config.py').write_text(
        f"_base_ = '{ROOT}/configs/toy/retinanet_r18_fpn_ghm-1500it_toy.py'\n")
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               OMP_NUM_THREADS='1', PORT='29517')
    out = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), 'my_config.py', '1',
                          '--work-dir', 'work', '--cfg-options', *data_options(toy, 1)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / 'work' / 'iter_1.pth').exists()


def test_class_counts_of_a_reordered_subset_in_label_order(toy, tmp_path):
    """The tool and ClassCountsHook give the counts in the order of the labels the
    model trains with, for a config with a subset of the classes in another order,
    and count an image that repeat-factor sampling repeats once."""
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import ClassBalancedDataset, RepeatDataset
    ann = toy / 'annotations' / 'instances_train.json'
    subset = ('triangle', 'cross', 'square')  # another order than the file's, two left out
    config = tmp_path / 'subset.py'
    config.write_text(f"_base_ = '{ROOT}/configs/toy/retinanet_r18_fpn_cb-focal-1500it_toy.py'\n"
                      f"train_dataloader = dict(dataset=dict(metainfo=dict(classes={subset!r})))\n")
    def printed(*args):  # the tool's own lines (the config's imports warn on stderr)
        out = run('tools/class_counts.py', str(ann), *args)
        return [line for line in out.splitlines() if line.startswith(('#', 'class_counts='))]

    lines = printed('--config', str(config))
    assert "label i is the i-th of ['square', 'triangle', 'cross']" in lines[0]
    listed = json.loads(lines[-1].split('=', 1)[1])
    assert printed('--classes', *subset) == lines
    dataset = CocoDataset(data_root=str(toy), ann_file='annotations/instances_train.json',
                          data_prefix=dict(img='train/'), filter_cfg=None, pipeline=[],
                          metainfo=dict(classes=subset))
    by_label = [0] * 3  # what the model trains with: the label of each instance
    for i in range(len(dataset)):
        for instance in dataset.get_data_info(i)['instances']:
            by_label[instance['bbox_label']] += 1
    assert listed == by_label == dataset_class_counts(dataset, 3)
    assert len(set(listed)) == 3  # the order is seen
    balanced = ClassBalancedDataset(dataset, oversample_thr=0.5)
    assert len(balanced) > len(dataset)  # rare images repeated
    assert dataset_class_counts(balanced, 3) == listed
    assert dataset_class_counts(RepeatDataset(dataset, times=3), 3) == listed


QUALITY_HEADS = {'GFL': 'gfl_r18_fpn', 'TOOD': 'tood_r18_fpn', 'RTMDet': 'rtmdet_tiny'}


@pytest.mark.parametrize('loss', ['GHMCLoss', 'SigmoidFocalLoss'])
@pytest.mark.parametrize('detector', QUALITY_HEADS)
def test_mmdets_train_py_trains_quality_heads_with_our_losses(toy, tmp_path, detector, loss):
    """GFL, TOOD and RTMDet pass (labels, quality scores), TOOD as probabilities: two
    iterations of mmdet's own tools/train.py with our loss as loss_cls."""
    import mmdet
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    prefix = QUALITY_HEADS[detector]
    config = tmp_path / 'config.py'
    config.write_text(
        f"_base_ = '{ROOT}/configs/toy_detectors/{prefix}_qfl-1500it_toy.py'\n"
        f"model = dict(bbox_head=dict(loss_cls=dict(_delete_=True, type='{loss}', "
        f"use_sigmoid=True, activated={detector == 'TOOD'})))\n")
    log = run(train_py, str(config), '--work-dir', str(tmp_path / 'work'),
              '--cfg-options', *data_options(toy, 2), cwd=str(tmp_path))
    # evaluated; two iterations from scratch may leave RTMDet without a valid box
    assert 'coco/bbox_mAP' in log or 'The testing results of the whole dataset is empty' in log
    losses = [json.loads(line) for line in open(next((tmp_path / 'work').glob(
        '*/vis_data/scalars.json'))) if '"loss_cls"' in line]
    assert len(losses) == 2 and all(math.isfinite(r['loss_cls']) and r['loss_cls'] > 0
                                    for r in losses)
    state = torch.load(tmp_path / 'work' / 'iter_2.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    if loss == 'GHMCLoss':  # our loss ran: its EMA holds the two iterations' counts
        assert state['bbox_head.loss_cls.density.acc_sum'].sum() > 0
