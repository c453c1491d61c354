# GHM-C + GHM-R per FPN level, with GHM-R's mu=0.2: the setting for small data
# (docs/ghm_on_small_data.md).
_base_ = './_base_/retinanet_toy_lvis.py'

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.2, bins=10, momentum=0.7,
                       loss_weight=10.0)))
