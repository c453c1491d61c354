# RetinaNet R-50-FPN 1x on COCO with the class-balanced focal loss: beta 0.999 with
# RetinaNet's focal setting (gamma 2, alpha 0.25) under the class weights. The CB
# paper's large-scale setting (gamma 0.5, no alpha) starts with a loss_cls some 35x
# focal's and trained worse on the toy COCO set (docs/losses.md, "Class-balanced
# focal on the toy COCO set"). The class counts are read from the training
# annotations when training starts (ClassCountsHook); to pin them, paste the output
# of `python tools/class_counts.py ANN.json` as class_counts=[...].
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_ghm'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='GHMRetinaHead',
        loss_cls=dict(_delete_=True, type='ClassBalancedFocalLoss', use_sigmoid=True,
                      beta=0.999, gamma=2.0, alpha=0.25, loss_weight=1.0)))
custom_hooks = [dict(type='ClassCountsHook')]
