# As ghm_retinanet_r50_fpn_1x_coco.py but with one loss call per iteration over the
# anchors of all FPN levels (opt-in batch scope; not what the published numbers use).
_base_ = './ghm_retinanet_r50_fpn_1x_coco.py'

model = dict(bbox_head=dict(loss_scope='batch'))
