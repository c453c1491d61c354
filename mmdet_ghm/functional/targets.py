"""Index labels: as one-hot targets, or as the one label column of each row."""
from typing import Tuple

import torch
from torch import Tensor


def one_hot_labels(labels: Tensor, num_classes: int) -> Tensor:
    """(N,) labels in [0, C] to (N, C) fp32 one-hot; label C (background) is all 0.

    A broadcast compare, not ``F.one_hot``, whose range check reads the labels
    back to the host.
    """
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).float()


def label_columns(labels: Tensor, num_classes: int) -> Tuple[Tensor, Tensor]:
    """(N, 1) column of each label (clamped for background) and (N, 1) mask of
    the rows whose label is an object class."""
    return (labels.clamp(max=num_classes - 1).unsqueeze(1),
            (labels < num_classes).unsqueeze(1))
