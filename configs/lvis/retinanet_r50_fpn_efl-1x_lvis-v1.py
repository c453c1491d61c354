# RetinaNet R-50-FPN 1x on LVIS v1 with the equalized focal loss (Li et al., CVPR
# 2022) at the authors' defaults (gamma_b 2, alpha 0.25, scale factor 8); data,
# sampling and metric as the focal config. SyncStatisticsHook folds each iteration's
# per-class gradient statistics in (summed over the GPUs); it is needed on one GPU too.
_base_ = './retinanet_r50_fpn_focal-1x_lvis-v1.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='EqualizedFocalLoss', num_classes=1203,
                      use_sigmoid=True, gamma=2.0, alpha=0.25, scale_factor=8.0,
                      loss_weight=1.0)))
custom_hooks = [dict(type='DensityLoggerHook', interval=500), dict(type='SyncStatisticsHook')]
