# The detector with its own losses (mmdet's FocalLoss), the baseline of its GHM variants.
_base_ = './_base_/atss_toy.py'
