# Equalized focal loss with the authors' defaults (gamma_b 2, alpha 0.25, s 8);
# SyncStatisticsHook (in the base's custom_hooks) folds each iteration's gradient
# statistics into the per-class ratio.
_base_ = './_base_/retinanet_toy_lvis.py'

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='EqualizedFocalLoss', num_classes=25,
                      use_sigmoid=True, gamma=2.0, alpha=0.25, scale_factor=8.0,
                      loss_weight=1.0)))
