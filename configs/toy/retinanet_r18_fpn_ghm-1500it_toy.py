# GHM-C + GHM-R called once per FPN level (GHMRetinaHead's default scope), as the
# authors' code and mmdet's RetinaHead do.
_base_ = './_base_/retinanet_toy.py'

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
