"""Registered losses (mmdet's MODELS registry)."""
from .class_balanced_focal import ClassBalancedFocalLoss
from .equalized_focal import ClassGradientRatio, EqualizedFocalLoss
from .ghm_c import GHMCLoss
from .ghm_r import GHMRLoss
from .gradient_density import GradientDensity
from .rank_sync import RankSyncedStatistics, attach_sync, sync_statistics
from .sigmoid_focal import SigmoidFocalLoss

__all__ = [
    'GHMCLoss', 'GHMRLoss', 'SigmoidFocalLoss', 'ClassBalancedFocalLoss',
    'EqualizedFocalLoss', 'ClassGradientRatio', 'GradientDensity', 'RankSyncedStatistics', 'attach_sync', 'sync_statistics'
]
