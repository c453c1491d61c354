# As ghm_retinanet_r50_fpn_1x_coco.py but with one loss call per FPN level, as
# mmdet's RetinaHead (and its GHMC/GHMR config, 37.0 box AP) does.
_base_ = './ghm_retinanet_r50_fpn_1x_coco.py'

model = dict(bbox_head=dict(loss_scope='level'))
