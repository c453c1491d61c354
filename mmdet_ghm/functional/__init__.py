"""Pure math on tensors: no state, no registry, no mmdet."""
from .asl1 import asl1_root, weighted_asl1
from .class_balanced import effective_number_weights
from .density import bin_counts, bin_index, bin_lookup, density_weights
from .focal import focal_modulator, sigmoid_focal_index_loss, sigmoid_focal_loss
from .ghmc import ghmc_bins, ghmc_histogram, ghmc_weighted_bce
from .targets import one_hot_labels

__all__ = [
    'asl1_root', 'weighted_asl1', 'effective_number_weights', 'bin_index',
    'bin_counts', 'bin_lookup', 'density_weights', 'focal_modulator', 'sigmoid_focal_loss',
    'sigmoid_focal_index_loss',
    'one_hot_labels', 'ghmc_bins', 'ghmc_histogram', 'ghmc_weighted_bce'
]
