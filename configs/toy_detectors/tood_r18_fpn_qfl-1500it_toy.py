# The detector with its own losses (mmdet's QualityFocalLoss (probabilities)), the baseline of its GHM variants.
_base_ = './_base_/tood_toy.py'
