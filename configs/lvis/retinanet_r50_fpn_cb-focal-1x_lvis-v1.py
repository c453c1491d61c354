# RetinaNet R-50-FPN 1x on LVIS v1 with the class-balanced focal loss; data,
# sampling and metric as the focal config. The class counts are read from the
# training annotations when training starts (ClassCountsHook counts each
# annotation once, not ClassBalancedDataset's repeats); to pin them, paste the
# output of `python tools/class_counts.py data/lvis_v1/annotations/lvis_v1_train.json`.
_base_ = './retinanet_r50_fpn_focal-1x_lvis-v1.py'

# beta 0.9999, gamma 0.5, no alpha, each anchor weighted by its own class (the CB
# authors' convention): the best of the eight class-balanced settings on the
# long-tailed toy set (docs/long_tail.md), where plain focal and GHM still did better.
model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='ClassBalancedFocalLoss', use_sigmoid=True,
                      beta=0.9999, gamma=0.5, weighting='sample', loss_weight=1.0)))
custom_hooks = [dict(type='ClassCountsHook')]
