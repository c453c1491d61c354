# Class-balanced focal loss; the class counts come from the training annotations
# (ClassCountsHook, which counts each annotation once under ClassBalancedDataset).
# The base of the long-tail study (docs/long_tail.md): its other settings are
# --cfg-options of this config, on file in docs/toy_lvis_results.json.
_base_ = './_base_/retinanet_toy_lvis.py'

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='ClassBalancedFocalLoss', use_sigmoid=True,
                      beta=0.999, gamma=0.5, loss_weight=1.0)))
custom_hooks = [dict(type='DensityLoggerHook', interval=50), dict(type='ClassCountsHook')]
