# The detector with its own losses (mmdet's FocalLoss (gamma 1.5, alpha 0.4) and SmoothL1Loss), the baseline of its GHM variants.
_base_ = './_base_/fovea_toy.py'
