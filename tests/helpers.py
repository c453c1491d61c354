"""What the tests share: inputs like RetinaHead passes them, our losses, a loss
with its gradient, and the markers of tests that need the kernels."""
import copy

import pytest
import torch
from hypothesis import settings

# What a test needs of the installed triton, asked of it at collection (conftest
# skips a test without what it needs, with the reason):
# - kernels: a triton that builds the kernels (ops.kernel_support());
# - runs_kernels: the kernels really run: on a GPU, or on the CPU in an
#   interpreter that can run them (ops.interpreter_support(): triton >= 3.0).
KERNELS = pytest.mark.kernels
RUNS_KERNELS = pytest.mark.runs_kernels
# impl values of a test that runs both implementations
BOTH_IMPLS = ['torch', pytest.param('triton', marks=RUNS_KERNELS)]


def make_cls_inputs(num_anchors=200, num_classes=7, seed=0, scale=3.0,
                    pos_frac=0.1, ignore_frac=0.1, dtype=torch.float32):
    """Random logits, index labels with background (= C) and (N,) label weights
    with some ignored anchors, like RetinaHead passes them."""
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(num_anchors, num_classes, generator=gen) * scale).to(dtype)
    labels = torch.full((num_anchors, ), num_classes, dtype=torch.long)
    pos = torch.rand(num_anchors, generator=gen) < pos_frac
    labels[pos] = torch.randint(0, num_classes, (int(pos.sum()), ), generator=gen)
    weight = (torch.rand(num_anchors, generator=gen) >= ignore_frac).float()
    return pred, labels, weight


def make_reg_inputs(num_anchors=100, seed=0, pos_frac=0.3, dtype=torch.float32):
    """Random box deltas, targets and (N, 4) weights: 1 for positives."""
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(num_anchors, 4, generator=gen) * 0.2).to(dtype)
    target = (torch.randn(num_anchors, 4, generator=gen) * 0.2).to(dtype)
    pos = (torch.rand(num_anchors, generator=gen) < pos_frac).float()
    return pred, target, pos.unsqueeze(1).expand(-1, 4).contiguous()


# The same 40 examples on every machine and every run (derandomize, no example
# database), and no deadline: the verdict must not depend on the machine's speed or
# on what an earlier run found.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def float64_cls_inputs():
    """Small fp64 classification inputs for ``torch.autograd.gradcheck``: 12
    anchors, 3 classes, the logits requiring grad."""
    pred, labels, weight = make_cls_inputs(num_anchors=12, num_classes=3, seed=5,
                                           pos_frac=0.4, dtype=torch.float64)
    return pred.requires_grad_(), labels, weight.double()


def ramp_like(loss):
    """0.5 to 1.5 over the elements of ``loss``: back-propagated, it compares
    'none' losses element by element in the gradient."""
    return torch.linspace(0.5, 1.5, loss.numel()).view(loss.shape)


def loss_and_grad(loss_fn, pred, *args, grad_out=torch.ones_like, calls=1, **kwargs):
    """The loss and the gradient of ``pred`` of the last of ``calls`` calls (a GHM
    loss's moving average sees the earlier ones), back-propagating
    ``grad_out(loss)``."""
    for _ in range(calls):
        x = pred.detach().clone().requires_grad_()
        loss = loss_fn(x, *args, **kwargs)
        loss.backward(grad_out(loss))
    return loss.detach(), x.grad


COUNTS = [90, 30, 10, 5, 3, 2, 1]  # class counts of ClassBalancedFocalLoss for 7 classes


def _losses():
    from mmdet_ghm.losses import (ClassBalancedFocalLoss, EqualizedFocalLoss, GHMCLoss,
                                  GHMRLoss, SigmoidFocalLoss, attach_sync)

    def equalized_focal(impl='auto'):
        loss = EqualizedFocalLoss(num_classes=7, impl=impl)
        attach_sync(loss)  # as SyncStatisticsHook does; its sums are never folded here
        return loss

    return {
        'GHMCLoss': (lambda impl='auto': GHMCLoss(impl=impl), make_cls_inputs),
        'GHMRLoss': (lambda impl='auto': GHMRLoss(impl=impl), make_reg_inputs),
        'SigmoidFocalLoss': (lambda impl='auto': SigmoidFocalLoss(impl=impl),
                             make_cls_inputs),
        'ClassBalancedFocalLoss': (lambda impl='auto': ClassBalancedFocalLoss(
            class_counts=COUNTS, impl=impl), make_cls_inputs),
        'EqualizedFocalLoss': (equalized_focal, make_cls_inputs),
    }


# {name: (build(impl) -> loss, make_inputs)} of our four losses
LOSSES = _losses()
CLS_LOSSES = {name: build for name, (build, make) in LOSSES.items()
              if make is make_cls_inputs}


# A small RetinaHead of our GHM losses, as the head tests and the DDP script build it
NUM_CLASSES = 4  # of the head
IMG = 128
GHM_LOSSES = dict(loss_cls=dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True),
                  loss_bbox=dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7))


def head_cfg(head_type, losses, **kwargs):
    return dict(
        type=head_type, num_classes=NUM_CLASSES, in_channels=8, feat_channels=8,
        stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                              scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                              strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                        target_stds=[1.0] * 4),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                                     neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1,
                       pos_weight=-1, debug=False),
        **copy.deepcopy(losses), **kwargs)


# mmdet 3.3's one-stage detectors with our losses, as the detector matrix
# (test_dense_heads/test_one_stage_detectors.py) and the DDP script
# (tests/ddp_no_objects.py) build them
DETECTOR_CLASSES, IMAGE = 5, 128
DETECTOR_COUNTS = [50, 30, 20, 10, 5]
DETECTOR_LOSSES = {
    'GHMCLoss': dict(type='GHMCLoss', use_sigmoid=True, bins=30, momentum=0.75),
    'SigmoidFocalLoss': dict(type='SigmoidFocalLoss', use_sigmoid=True, gamma=2.0,
                             alpha=0.25),
    'ClassBalancedFocalLoss': dict(type='ClassBalancedFocalLoss', use_sigmoid=True,
                                   class_counts=DETECTOR_COUNTS),
    "ClassBalancedFocalLoss(loss_type='sigmoid')": dict(
        type='ClassBalancedFocalLoss', use_sigmoid=True, class_counts=DETECTOR_COUNTS,
        loss_type='sigmoid'),
    'EqualizedFocalLoss': dict(type='EqualizedFocalLoss', use_sigmoid=True,
                               num_classes=DETECTOR_CLASSES),
}
GHMR = dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)

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
    # these pass (labels, quality scores) to QualityFocalLoss (TOOD: probabilities,
    # activated=True)
    'GFL': ('gfl/gfl_r50_fpn_1x_coco.py', False, 'works'),
    'TOOD': ('tood/tood_r50_fpn_1x_coco.py', False, 'works'),
    'RTMDet': ('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', False, 'works'),
}


def detector_batch(objects=True):
    """Two random 128 px images with three boxes each (``objects=False``: the
    same images without any), as a detector's ``data_preprocessor`` takes them."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

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
            labels=torch.randint(0, DETECTOR_CLASSES, (3, ), generator=gen))
        if not objects:
            sample.gt_instances = sample.gt_instances[:0]
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_detector(detector, loss_cls, ghmr):
    """The detector of mmdet's config for ``detector``, shrunk to the toy data (5
    classes, no pretrained weights), with our ``loss_cls`` (a key of
    DETECTOR_LOSSES) and GHMRLoss as ``loss_bbox`` if ``ghmr``; in training mode."""
    import os.path as osp

    import mmdet
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.model import revert_sync_batchnorm

    import mmdet_ghm  # noqa: F401  (registration)

    path, _, _ = DETECTORS[detector]
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path))
    cfg.model.backbone.init_cfg = None  # nothing is downloaded
    # SyncBN works on GPUs only: RTMDet's norm layers (reverted once built), and its
    # conversion under DDP
    if cfg.model.type == 'RTMDet':
        cfg.model.use_syncbn = False
    cfg.model.bbox_head.num_classes = DETECTOR_CLASSES
    # a head's choice of reduction stays (FSAF reweights elementwise losses)
    head_loss = cfg.model.bbox_head.get('loss_cls', {})
    reduction = head_loss.get('reduction', 'mean')
    cfg.model.bbox_head.loss_cls = dict(DETECTOR_LOSSES[loss_cls], reduction=reduction)
    if head_loss.get('activated', False):  # the head passes probabilities (TOOD)
        cfg.model.bbox_head.loss_cls.activated = True
    if ghmr:
        cfg.model.bbox_head.loss_bbox = GHMR
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if detector == 'TOOD':  # past the epochs of its warm-up loss, as the runner says
        MessageHub.get_current_instance().update_info('epoch',
                                                      model.bbox_head.initial_epoch)
    return model.train()
