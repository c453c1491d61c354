from .class_counts_hook import ClassCountsHook
from .density_logger_hook import DensityLoggerHook
from .sync_statistics_hook import SyncStatisticsHook

__all__ = ['ClassCountsHook', 'DensityLoggerHook', 'SyncStatisticsHook']
