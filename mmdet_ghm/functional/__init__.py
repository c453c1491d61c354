"""Pure math on tensors: no state, no threads, no registry, no mmdet. Each loss's
short reference is here (``ghmc_loss``, ``ghmr_loss``, ``sigmoid_focal_loss``,
``equalized_focal_loss``, with ``effective_number_weights`` for the class-balanced
one); the fast implementations behind ``mmdet_ghm.ops`` are tested against them."""
from .class_balanced import check_beta, effective_number_weights
from .density import bin_index, density_weights
from .dtype import compute_dtype
from .equalized_focal import equalized_focal_loss
from .focal import focal_modulator, sigmoid_focal_loss
from .ghm_c import ghmc_loss
from .ghm_r import asl1, ghmr_loss
from .targets import label_columns, one_hot_labels

__all__ = [
    'check_beta', 'effective_number_weights', 'bin_index', 'density_weights',
    'compute_dtype', 'equalized_focal_loss', 'focal_modulator', 'sigmoid_focal_loss',
    'ghmc_loss', 'asl1', 'ghmr_loss', 'label_columns', 'one_hot_labels'
]
