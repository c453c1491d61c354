# GHM-C + GHM-R called once per FPN level, as mmdet's RetinaHead does.
_base_ = './ghm_retinanet_toy.py'

model = dict(bbox_head=dict(loss_scope='level'))
