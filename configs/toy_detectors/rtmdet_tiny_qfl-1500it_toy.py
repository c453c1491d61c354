# The detector with its own losses (mmdet's QualityFocalLoss), the baseline of its GHM variants.
_base_ = './_base_/rtmdet_toy.py'
