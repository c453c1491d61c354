"""Pure math on tensors: no state, no threads, no registry, no mmdet."""
from .asl1 import asl1_root
from .class_balanced import effective_number_weights
from .density import bin_index, density_weights
from .dtype import compute_dtype
from .focal import focal_modulator, sigmoid_focal_loss
from .targets import label_columns, one_hot_labels

__all__ = [
    'asl1_root', 'effective_number_weights', 'bin_index', 'density_weights',
    'compute_dtype', 'focal_modulator', 'sigmoid_focal_loss', 'label_columns',
    'one_hot_labels'
]
