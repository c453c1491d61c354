"""Class-balanced weights from the effective number of samples (Cui et al., CVPR 2019)."""
from typing import Sequence

import torch
from torch import Tensor


def check_beta(beta: float, loss_name: str = '') -> None:
    """``0 <= beta < 1``, else a ValueError (prefixed with ``loss_name``)."""
    if not 0 <= beta < 1:
        prefix = f'{loss_name}: ' if loss_name else ''
        raise ValueError(f'{prefix}beta must be in [0, 1), got {beta}; beta = 0 means no '
                         're-weighting, beta close to 1 inverse class frequency.')


def effective_number_weights(class_counts: Sequence[int], beta: float) -> Tensor:
    """``w_c = (1 - beta) / (1 - beta ** n_c)`` normalised to sum to C.

    beta = 0 gives equal weights; beta -> 1 approaches inverse class frequency.
    Computed in float64 (``beta ** n`` for n ~ 1e6), returned as fp32.

    Args:
        class_counts (Sequence[int]): Number of training samples of each class.
        beta (float): Hyper-parameter in [0, 1).

    Returns:
        Tensor: fp32 weights of shape (C,), summing to C.

    Raises:
        ValueError: for beta outside [0, 1), negative or non-integer counts, or
            a class with zero samples (its weight would be infinite).
    """
    check_beta(beta)
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError('class_counts must be a non-empty list with one count per '
                         f'class, got shape {tuple(counts.shape)}.')
    if not torch.equal(counts, counts.round()) or (counts < 0).any():
        raise ValueError(f'class_counts must be non-negative integers, got {class_counts}.')
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f'class_counts is 0 for class indices {empty}: the effective number of '
            'a class without samples is 0 and its weight would be infinite. Give '
            'those classes a count >= 1 or remove them from the dataset classes.')
    weights = (1 - beta) / (1 - torch.pow(beta, counts))
    return (weights * counts.numel() / weights.sum()).float()
