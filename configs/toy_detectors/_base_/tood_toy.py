# TOOD (mmdet's tood_r50_fpn_1x_coco.py) on the toy data: the toy RetinaNet's
# backbone, neck, data and schedule, TOOD's head at its width, anchor-free. Its
# warm-up loss (ATSS assignment, focal loss) runs for initial_epoch epochs, which
# an iteration-based run never leaves: 0 here, so loss_cls, which takes quality
# targets of probabilities (activated=True), trains from the start.
_base_ = '../../toy/_base_/retinanet_toy.py'

model = dict(
    type='TOOD',
    bbox_head=dict(
        _delete_=True,
        type='TOODHead',
        num_classes=5,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        anchor_type='anchor_free',
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=2,
                              scales_per_octave=1, strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        initial_loss_cls=dict(type='FocalLoss', use_sigmoid=True, activated=True,
                              gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, activated=True, beta=2.0,
                      loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(_delete_=True, initial_epoch=0,
                   initial_assigner=dict(type='ATSSAssigner', topk=9),
                   assigner=dict(type='TaskAlignedAssigner', topk=13), alpha=1, beta=6,
                   allowed_border=-1, pos_weight=-1, debug=False))
