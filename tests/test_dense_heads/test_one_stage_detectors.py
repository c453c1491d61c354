"""Our losses in mmdet 3.3's one-stage detectors.

Each detector is built from its own ``mmdet::`` config, shrunk to the toy data
(5 classes, two 128 px images with three boxes each, no pretrained weights),
with ``loss_cls`` set to each of our classification losses (and ``loss_bbox``
to GHMRLoss where the head regresses deltas), and trained for two SGD
iterations. A cell passes when our loss was called and every loss is finite;
the README's table lists the results.
"""
import os.path as osp

import mmdet
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

import mmdet_ghm  # noqa: F401  (registration)

register_all_modules()

NUM_CLASSES, IMAGE = 5, 128
COUNTS = [50, 30, 20, 10, 5]
CLS_LOSSES = {
    'GHMCLoss': dict(type='GHMCLoss', use_sigmoid=True, bins=30, momentum=0.75),
    'SigmoidFocalLoss': dict(type='SigmoidFocalLoss', use_sigmoid=True, gamma=2.0,
                             alpha=0.25),
    'ClassBalancedFocalLoss': dict(type='ClassBalancedFocalLoss', use_sigmoid=True,
                                   class_counts=COUNTS),
    "ClassBalancedFocalLoss(loss_type='sigmoid')": dict(
        type='ClassBalancedFocalLoss', use_sigmoid=True, class_counts=COUNTS,
        loss_type='sigmoid'),
}
GHMR = dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)
QUALITY_TARGETS = 'need a quality-aware loss'  # our error for (labels, scores) targets

# name: (config, loss_bbox is a delta regression GHM-R can take, expected result)
DETECTORS = {
    'RetinaNet': ('retinanet/retinanet_r50_fpn_1x_coco.py', True, 'works'),
    'FCOS': ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', False, 'works'),
    'ATSS': ('atss/atss_r50_fpn_1x_coco.py', False, 'works'),
    'FoveaBox': ('foveabox/fovea_r50_fpn_4xb4-1x_coco.py', True, 'works'),
    'FSAF': ('fsaf/fsaf_r50_fpn_1x_coco.py', False, 'works'),
    'PAA': ('paa/paa_r50_fpn_1x_coco.py', False, 'works'),
    'YOLOF': ('yolof/yolof_r50-c5_8xb8-1x_coco.py', False, 'works'),
    'RepPoints': ('reppoints/reppoints-moment_r50_fpn_1x_coco.py', False, 'works'),
    'GA-RetinaNet': ('guided_anchoring/ga-retinanet_r50_fpn_1x_coco.py', True, 'works'),
    'SABL-RetinaNet': ('sabl/sabl-retinanet_r50_fpn_1x_coco.py', False, 'works'),
    'VFNet': ('vfnet/vfnet_r50_fpn_1x_coco.py', False, 'works'),
    # these heads compute their classification loss themselves from the scores
    'FreeAnchor': ('free_anchor/freeanchor_r50_fpn_1x_coco.py', True, 'not called'),
    'AutoAssign': ('autoassign/autoassign_r50-caffe_fpn_1x_coco.py', False, 'not called'),
    # these pass (labels, quality scores) to QualityFocalLoss
    'GFL': ('gfl/gfl_r50_fpn_1x_coco.py', False, QUALITY_TARGETS),
    'TOOD': ('tood/tood_r50_fpn_1x_coco.py', False, QUALITY_TARGETS),
}
# PAA scores each object's candidate anchors by their loss_cls (reduction 'none')
# and fits a Gaussian mixture to the scores; GHM-C's density weights of the
# candidates alone are no score, and we refuse the pair when the model is built
# (whether scikit-learn's fit fails on its scores depends on the machine).
BUILD_ERRORS = {('PAA', 'GHMCLoss'): (ValueError, 'GHMCLoss can not be the loss_cls of PAAHead')}
CELLS = [(det, loss, False) for det in DETECTORS for loss in CLS_LOSSES] + [
    (det, 'GHMCLoss', True) for det, (_, deltas, _) in DETECTORS.items() if deltas]


def batch():
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, IMAGE, IMAGE), generator=gen,
                                    dtype=torch.uint8))
        xy = torch.rand(3, 2, generator=gen) * IMAGE * 0.5
        wh = 16 + torch.rand(3, 2, generator=gen) * IMAGE * 0.4
        sample = DetDataSample(metainfo=dict(img_shape=(IMAGE, IMAGE),
                                             ori_shape=(IMAGE, IMAGE),
                                             pad_shape=(IMAGE, IMAGE),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, (xy + wh).clamp(max=IMAGE - 1)], 1),
            labels=torch.randint(0, NUM_CLASSES, (3, ), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(detector, loss_cls, ghmr):
    path, _, _ = DETECTORS[detector]
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path))
    cfg.model.backbone.init_cfg = None  # nothing is downloaded
    cfg.model.bbox_head.num_classes = NUM_CLASSES
    # a head's choice of reduction stays (FSAF reweights elementwise losses)
    reduction = cfg.model.bbox_head.get('loss_cls', {}).get('reduction', 'mean')
    cfg.model.bbox_head.loss_cls = dict(CLS_LOSSES[loss_cls], reduction=reduction)
    if ghmr:
        cfg.model.bbox_head.loss_bbox = GHMR
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if detector == 'TOOD':  # past the epochs of its warm-up loss, as the runner says
        MessageHub.get_current_instance().update_info('epoch',
                                                      model.bbox_head.initial_epoch)
    return model.train()


def train_two_iterations(model):
    """Calls of our losses, and the losses of each iteration."""
    calls = []
    head = model.bbox_head
    for loss in (head.loss_cls, getattr(head, 'loss_bbox', None)):
        if type(loss).__module__.startswith('mmdet_ghm'):
            loss.register_forward_hook(lambda m, *_: calls.append(type(m).__name__))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    history = []
    for _ in range(2):
        data = model.data_preprocessor(batch(), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        values = [v for k, vs in losses.items() if 'loss' in k
                  for v in (vs if isinstance(vs, list) else [vs])]
        optimizer.zero_grad()
        sum(v.sum() for v in values).backward()
        optimizer.step()
        history.append(values)
    return calls, history


@pytest.mark.parametrize('detector, loss_cls, ghmr', CELLS)
def test_our_losses_in_one_stage_detectors(detector, loss_cls, ghmr):
    expected = DETECTORS[detector][2]
    if (detector, loss_cls) in BUILD_ERRORS:
        error, message = BUILD_ERRORS[detector, loss_cls]
        with pytest.raises(error, match=message):
            build(detector, loss_cls, ghmr)
        return
    model = build(detector, loss_cls, ghmr)
    error, message = TypeError, QUALITY_TARGETS if expected == QUALITY_TARGETS else None
    if message is not None:
        with pytest.raises(error, match=message):
            train_two_iterations(model)
        return
    calls, history = train_two_iterations(model)
    for values in history:
        assert all(torch.isfinite(v).all() for v in values), values
    called = set(calls)
    if expected == 'works':
        assert type(model.bbox_head.loss_cls).__name__ in called
    else:  # the head never calls loss_cls
        assert type(model.bbox_head.loss_cls).__name__ not in called
    if ghmr:
        assert 'GHMRLoss' in called
