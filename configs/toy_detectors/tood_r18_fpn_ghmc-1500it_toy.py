# GHM-C as loss_cls, the head's own box loss.
_base_ = './_base_/tood_toy.py'

model = dict(
    bbox_head=dict(
        loss_cls=dict(_delete_=True, type='GHMCLoss', bins=30, momentum=0.75,
                      use_sigmoid=True, loss_weight=1.0, activated=True)))
