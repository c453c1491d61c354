# FoveaBox (mmdet's fovea_r50_fpn_4xb4-1x_coco.py) on the toy data: the toy
# RetinaNet's backbone, neck, data and schedule, FoveaBox's head at its width, its
# object-size ranges scaled to the 160 px images (a quarter of COCO's).
_base_ = '../../toy/_base_/retinanet_toy.py'

model = dict(
    type='FOVEA',
    bbox_head=dict(
        _delete_=True,
        type='FoveaHead',
        num_classes=5,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 16, 32, 64, 128],
        base_edge_list=[4, 8, 16, 32, 64],
        scale_ranges=((1, 16), (8, 32), (16, 64), (32, 128), (64, 512)),
        sigma=0.4,
        with_deform=False,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=1.50, alpha=0.4,
                      loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=0.11, loss_weight=1.0)),
    train_cfg=dict(_delete_=True))
