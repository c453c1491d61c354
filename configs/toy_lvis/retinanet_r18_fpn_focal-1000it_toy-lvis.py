# Our SigmoidFocalLoss (RetinaNet defaults gamma=2, alpha=0.25) + L1.
_base_ = './_base_/retinanet_toy_lvis.py'

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='SigmoidFocalLoss', use_sigmoid=True,
                      gamma=2.0, alpha=0.25, loss_weight=1.0)))
