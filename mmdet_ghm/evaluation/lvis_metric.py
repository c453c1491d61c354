"""mmdet's LVISMetric, runnable with the lvis-api release on PyPI and numpy >= 1.24."""
import contextlib

import numpy as np
from mmdet.evaluation import LVISMetric
from mmdet.registry import METRICS


@contextlib.contextmanager
def numpy_float_alias():
    """Gives numpy back its ``np.float`` (an alias of ``float``, removed in numpy
    1.24) while the block runs, where numpy lacks it: lvis 0.5.3's
    ``LVISEval.accumulate`` casts with ``astype(dtype=np.float)``. numpy is left
    as it was found."""
    if 'float' in vars(np):
        yield
        return
    np.float = float
    try:
        yield
    finally:
        del np.float


@METRICS.register_module()
class NumpyCompatLVISMetric(LVISMetric):
    """mmdet's ``LVISMetric`` (AP, APr, APc, APf: logged as ``lvis/bbox_AP``,
    ``lvis/bbox_APr``, ...), with the same arguments, for the ``lvis`` package that
    pip installs (0.5.3, the official lvis-api) under numpy >= 1.24, where mmdet's
    own raises ``AttributeError: module 'numpy' has no attribute 'float'`` at the
    end of the first evaluation. Nothing else differs."""

    def compute_metrics(self, results: list) -> dict:
        with numpy_float_alias():
            return super().compute_metrics(results)
