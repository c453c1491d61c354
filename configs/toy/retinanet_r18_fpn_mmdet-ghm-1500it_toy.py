# For comparison: mmdet's own GHMC/GHMR with mmdet's RetinaHead (per-level calls).
_base_ = './_base_/retinanet_toy.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='GHMC', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMR', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
