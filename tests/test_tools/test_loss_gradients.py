"""tools/loss_gradients.py: each loss term's value and its gradient norm on the neck
outputs, for several configs at the same weights."""
import math

import pytest
import torch

from .conftest import load_tool, run

FOCAL = 'configs/toy/retinanet_r18_fpn_focal-1500it_toy.py'
GHMC = 'configs/toy/retinanet_r18_fpn_ghmc-l1-1500it_toy.py'
FCOS = 'configs/toy_detectors/fcos_r18_fpn_mmdet-focal-1500it_toy.py'
EPS = torch.finfo(torch.float32).eps


@pytest.fixture(scope='module')
def tool():
    return load_tool('loss_gradients')


def data_options(root):
    return {'train_dataloader.dataset.data_root': f'{root}/',
            'train_dataloader.batch_size': 4}


def random_weights(config, seed=0):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    torch.manual_seed(seed)
    return MODELS.build(Config.fromfile(config).model).state_dict()


def test_same_weights_and_batches_give_the_same_box_term(tool, toy):
    # focal and GHM-C configs share the architecture and the L1 box loss: at the same
    # weights on the same images and flips, only the classification term may differ
    weights = random_weights(FOCAL)
    focal, _ = tool.measure(FOCAL, weights, 2, 0, data_options(toy))
    ghmc, fresh = tool.measure(GHMC, weights, 2, 0, data_options(toy))
    assert focal['loss_bbox'] == ghmc['loss_bbox']
    assert focal['loss_cls'][1] > 0 and ghmc['loss_cls'][1] > 0
    assert not math.isclose(focal['loss_cls'][1], ghmc['loss_cls'][1], rel_tol=0.1)
    # GHM-C's EMA histogram is not in a focal model's weights: it starts fresh, listed
    assert fresh == ['bbox_head.loss_cls.density.acc_sum']


def test_loss_weight_scales_its_own_term_only(tool, toy):
    weights = random_weights(FOCAL)
    base, _ = tool.measure(FOCAL, weights, 1, 0, data_options(toy))
    options = dict(data_options(toy), **{'model.bbox_head.loss_cls.loss_weight': 10.0})
    scaled, _ = tool.measure(FOCAL, weights, 1, 0, options)
    for i in (0, 1):  # value, gradient norm
        assert math.isclose(scaled['loss_cls'][i], 10 * base['loss_cls'][i], rel_tol=8 * EPS)
    assert scaled['loss_bbox'] == base['loss_bbox']


def test_checkpoint_of_another_architecture_is_refused(tool, toy):
    with pytest.raises(SystemExit, match='does not fit the model of .*Give a checkpoint'):
        tool.measure(FOCAL, random_weights(FCOS), 1, 0, data_options(toy))


def test_more_batches_than_images_is_refused(tool, toy):
    with pytest.raises(SystemExit, match='need 400 training images; the dataset has 24'):
        tool.measure(FOCAL, random_weights(FOCAL), 100, 0, data_options(toy))


def test_command_line_prints_a_row_per_config_and_term(toy, tmp_path):
    checkpoint = tmp_path / 'weights.pth'
    torch.save({'state_dict': random_weights(FOCAL)}, checkpoint)
    out = run('tools/loss_gradients.py', FOCAL, GHMC, '--checkpoint', str(checkpoint),
              '--batches', '1', '--cfg-options',
              *[f'{k}={v}' for k, v in data_options(toy).items()])
    rows = [line for line in out.splitlines() if line.startswith('| retinanet')]
    assert [row.split(' | ')[1] for row in rows] == ['loss_cls', 'loss_bbox'] * 2
    # the shares of a config's terms sum to 1
    for config_rows in (rows[:2], rows[2:]):
        assert math.isclose(sum(float(r.rstrip(' |').rsplit('| ', 1)[1]) for r in config_rows),
                            1.0, abs_tol=0.011)
    assert 'started fresh: bbox_head.loss_cls.density.acc_sum' in out
