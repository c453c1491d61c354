# RetinaNet R-50-FPN on Pascal VOC 07+12 with GHM-C + GHM-R (per-level calls).
# The GHM paper notes GHM needs little warm-up on VOC: mmdet's VOC schedule has
# none, and it is kept as it is.
_base_ = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(_delete_=True, type='GHMRLoss', mu=0.02, bins=10, momentum=0.7,
                       loss_weight=10.0)))
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
# SyncStatisticsHook: the EMA of the bin counts equal on every GPU (docs/distributed.md)
custom_hooks = [dict(type='DensityLoggerHook', interval=500), dict(type='SyncStatisticsHook')]
