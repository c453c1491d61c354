# Ablation of `ghm`: GHM-C with the base config's L1 box loss (RetinaNet's), to
# tell what GHM-C and GHM-R each do on the toy data.
_base_ = './retinanet_r18_fpn_ghm-1500it_toy.py'

model = dict(bbox_head=dict(loss_bbox=dict(_delete_=True, type='L1Loss', loss_weight=1.0)))
