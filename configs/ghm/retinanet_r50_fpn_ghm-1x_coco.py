# RetinaNet R-50-FPN 1x on COCO with GHM-C + GHM-R called once per FPN level, as the
# authors' code that gave the paper's 37.0 box AP does. COCO in data/coco/.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

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
