# RetinaNet R-50-FPN 1x on COCO with the class-balanced focal loss (beta 0.999,
# gamma 0.5: the CB paper's large-scale setting). The class counts are read from
# the training annotations when training starts (ClassCountsHook); to pin them,
# paste the output of `python tools/class_counts.py ANN.json` as class_counts=[...].
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='ClassBalancedFocalLoss', use_sigmoid=True,
                      beta=0.999, gamma=0.5, loss_weight=1.0)))
custom_hooks = [dict(type='ClassCountsHook')]
