# RetinaNet R-50-FPN 1x on LVIS v1 with GHM-C + GHM-R called once per FPN level
# (the COCO settings of configs/ghm/); data, sampling and metric as the focal config.
_base_ = './retinanet_r50_fpn_focal-1x_lvis-v1.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
# SyncStatisticsHook: the EMA of the bin counts equal on every GPU (docs/distributed.md)
custom_hooks = [dict(type='DensityLoggerHook', interval=500), dict(type='SyncStatisticsHook')]
