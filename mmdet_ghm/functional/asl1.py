"""Authentic Smooth L1 of GHM-R: ``ASL1(d) = sqrt(d^2 + mu^2) - mu``."""
import torch
from torch import Tensor


def asl1_loss(diff: Tensor, mu: float) -> Tensor:
    """Elementwise ASL1 of ``diff = pred - target``."""
    return torch.sqrt(diff * diff + mu * mu) - mu


def asl1_gradient_norm(diff: Tensor, mu: float) -> Tensor:
    """``|d ASL1 / d d| = |d| / sqrt(d^2 + mu^2)``, in [0, 1), detached."""
    diff = diff.detach()
    return diff.abs() / torch.sqrt(diff * diff + mu * mu)
