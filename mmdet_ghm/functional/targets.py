"""Index labels to one-hot targets."""
import torch
from torch import Tensor


def one_hot_labels(labels: Tensor, num_classes: int) -> Tensor:
    """(N,) labels in [0, C] to (N, C) fp32 one-hot; label C (background) is all 0.

    A broadcast compare, not ``F.one_hot``, whose range check reads the labels
    back to the host.
    """
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).float()
