# Ablation of `ghm`: our focal loss (RetinaNet's defaults) with GHM-R at the
# paper's settings, to tell what GHM-C and GHM-R each do on the toy data.
_base_ = './retinanet_r18_fpn_ghm-1500it_toy.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='SigmoidFocalLoss', use_sigmoid=True,
                      gamma=2.0, alpha=0.25, loss_weight=1.0)))
