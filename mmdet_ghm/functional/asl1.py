"""Authentic Smooth L1 of GHM-R, ``ASL1(d) = sqrt(d^2 + mu^2) - mu``."""
import torch
from torch import Tensor


def asl1_root(diff: Tensor, mu: float) -> Tensor:
    """``sqrt(d^2 + mu^2)`` of ``diff = pred - target``: ASL1 is it minus mu,
    the gradient norm ``|d| / root`` (in [0, 1)) and the gradient ``d / root``."""
    return torch.sqrt(diff * diff + mu * mu)
