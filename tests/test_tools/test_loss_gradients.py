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
    focal, fresh_focal, _ = tool.measure(FOCAL, weights, 2, 0, data_options(toy), warmup=2)
    ghmc, fresh, _ = tool.measure(GHMC, weights, 2, 0, data_options(toy), warmup=2)
    # the same measured batches although only GHM-C's fresh EMA is warmed up first
    assert fresh_focal == []
    assert focal['loss_bbox'] == ghmc['loss_bbox']
    assert focal['loss_cls'][1] > 0 and ghmc['loss_cls'][1] > 0
    assert not math.isclose(focal['loss_cls'][1], ghmc['loss_cls'][1], rel_tol=0.1)
    # GHM-C's EMA histogram is not in a focal model's weights: it starts fresh, listed
    assert fresh == ['bbox_head.loss_cls.density.acc_sum']


def test_loss_weight_scales_its_own_term_only(tool, toy):
    weights = random_weights(FOCAL)
    base, _, _ = tool.measure(FOCAL, weights, 1, 0, data_options(toy))
    options = dict(data_options(toy), **{'model.bbox_head.loss_cls.loss_weight': 10.0})
    scaled, _, _ = tool.measure(FOCAL, weights, 1, 0, options)
    for i in (0, 1):  # value, gradient norm
        assert math.isclose(scaled['loss_cls'][i], 10 * base['loss_cls'][i], rel_tol=8 * EPS)
    assert scaled['loss_bbox'] == base['loss_bbox']


def config(path, root, options=None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(dict(data_options(root), **(options or {})))
    return cfg


def test_equals_mmdets_own_loss_path(tool, toy):
    # reference: the detector's own loss() (backbone, neck and head as in training),
    # the head's inputs swapped for leaves by a forward pre-hook, the terms summed by
    # mmengine's parse_losses, GHM-C's EMA carried from batch to batch
    from mmdet.registry import MODELS

    from mmdet_ghm.losses import attach_sync, sync_statistics
    cfg = config(GHMC, toy)
    weights = random_weights(FOCAL)
    data_batches = tool.batches(cfg, 2, 0)
    model = tool.build_model(cfg)
    tool.load_weights(model, weights, GHMC)
    measured = tool.loss_gradients(model, data_batches)

    reference = MODELS.build(cfg.model)
    reference.load_state_dict(weights, strict=False)
    attach_sync(reference)
    reference.train()
    leaves = []

    def as_leaves(head, args):
        leaves[:] = [f.detach().requires_grad_() for f in args[0]]
        return (tuple(leaves),)

    reference.bbox_head.register_forward_pre_hook(as_leaves)
    sums = {}
    for batch in data_batches:
        data = reference.data_preprocessor(batch, True)
        _, terms = reference.parse_losses(reference.loss(data['inputs'], data['data_samples']))
        for name in ('loss_cls', 'loss_bbox'):
            grads = torch.autograd.grad(terms[name], leaves, retain_graph=True)
            norm = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))
            value, total = sums.get(name, (0.0, 0.0))
            sums[name] = (value + float(terms[name]), total + norm)
        sync_statistics(reference)
    assert set(measured) == {'loss_cls', 'loss_bbox'}
    for name, (value, norm) in sums.items():
        assert math.isclose(measured[name][0], value / 2, rel_tol=16 * EPS)
        assert math.isclose(measured[name][1], norm / 2, rel_tol=16 * EPS)


def test_loss_statistics_fold_after_each_batch(tool, toy):
    # EFL adds each call's gradient sums to `pending`; only the per-iteration sync
    # folds them into its ratios, as SyncStatisticsHook does in training
    efl = dict(_delete_=True, type='EqualizedFocalLoss', num_classes=5, use_sigmoid=True)
    cfg = config(FOCAL, toy, {'model.bbox_head.loss_cls': efl})
    model = tool.build_model(cfg)
    tool.load_weights(model, random_weights(FOCAL), FOCAL)
    tool.loss_gradients(model, tool.batches(cfg, 1, 0))
    loss = model.bbox_head.loss_cls.statistics
    assert torch.all(loss.pending == 0)
    assert loss.pos_grad.sum() > 0 and torch.all(loss.neg_grad > 0)  # folded


def test_mmdets_ghmc_keys_load_through_the_losses_hooks(tool, toy):
    # a checkpoint of mmdet's GHMC (acc_sum, edges) carries its EMA into ours:
    # nothing starts fresh, nothing is left unused
    weights = random_weights(GHMC)
    ema = torch.rand(30)
    del weights['bbox_head.loss_cls.density.acc_sum']
    weights['bbox_head.loss_cls.acc_sum'] = ema
    weights['bbox_head.loss_cls.edges'] = torch.arange(31) / 30
    model = tool.build_model(config(GHMC, toy))
    assert tool.load_weights(model, weights, GHMC) == ([], [])
    assert torch.equal(model.bbox_head.loss_cls.density.acc_sum, ema)


def test_an_anchor_free_heads_loss_state_loads(tool, toy):
    # without the checkpoint's module versions mmdet's anchor-free heads (FCOS) take
    # it for an old one and rename loss_cls.* to conv_cls.*: the EMA must load
    fcos_ghmc = 'configs/toy_detectors/fcos_r18_fpn_ghmc-1500it_toy.py'
    model = tool.build_model(config(fcos_ghmc, toy))
    weights = model.state_dict()
    ema = torch.rand(30)
    weights['bbox_head.loss_cls.density.acc_sum'] = ema
    assert tool.load_weights(model, weights, fcos_ghmc) == ([], [])
    assert torch.equal(model.bbox_head.loss_cls.density.acc_sum, ema)


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
              '--batches', '1', '--warmup-batches', '1', '--cfg-options',
              *[f'{k}={v}' for k, v in data_options(toy).items()])
    rows = [line for line in out.splitlines() if line.startswith('| retinanet')]
    assert [row.split(' | ')[1] for row in rows] == ['loss_cls', 'loss_bbox'] * 2
    # the shares of a config's terms sum to 1
    for config_rows in (rows[:2], rows[2:]):
        assert math.isclose(sum(float(r.rstrip(' |').rsplit('| ', 1)[1]) for r in config_rows),
                            1.0, abs_tol=0.011)
    assert ('started fresh and warmed up on 1 other batches: '
            'bbox_head.loss_cls.density.acc_sum') in out
