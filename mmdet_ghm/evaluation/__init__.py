from .lvis_metric import NumpyCompatLVISMetric

__all__ = ['NumpyCompatLVISMetric']
