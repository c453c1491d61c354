# GHM-C + GHM-R called once per iteration over the anchors of all levels (opt-in
# batch scope): one mean instead of the per-level sum the loss weights were tuned for.
_base_ = './ghm_retinanet_toy.py'

model = dict(bbox_head=dict(loss_scope='batch'))
