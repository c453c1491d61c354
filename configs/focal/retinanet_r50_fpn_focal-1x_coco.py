# RetinaNet R-50-FPN 1x on COCO with our SigmoidFocalLoss (gamma 2, alpha 0.25).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='SigmoidFocalLoss', use_sigmoid=True,
                      gamma=2.0, alpha=0.25, loss_weight=1.0)))
