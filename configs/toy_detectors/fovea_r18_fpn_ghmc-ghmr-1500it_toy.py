# GHM-C as loss_cls and GHM-R as loss_bbox (FoveaBox regresses deltas).
_base_ = './_base_/fovea_toy.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
