# For comparison: mmdet's own FocalLoss + L1 with mmdet's RetinaHead.
_base_ = './_base_/retinanet_toy.py'
