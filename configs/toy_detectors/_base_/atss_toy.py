# ATSS (mmdet's atss_r50_fpn_1x_coco.py) on the toy data: the toy RetinaNet's
# backbone, neck, data and schedule, ATSS's head at its width; one anchor per
# location, of 16 px on P3 as the toy RetinaNet's smallest (objects from 8 px).
_base_ = '../../toy/_base_/retinanet_toy.py'

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=5,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=2,
                              scales_per_octave=1, strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(_delete_=True, assigner=dict(type='ATSSAssigner', topk=9),
                   allowed_border=-1, pos_weight=-1, debug=False))
