from .class_counts_hook import ClassCountsHook
from .density_logger_hook import DensityLoggerHook

__all__ = ['ClassCountsHook', 'DensityLoggerHook']
