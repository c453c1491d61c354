"""The dtype every loss computes in."""
import torch
from torch import Tensor


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """fp32 for half/bfloat16/fp32 inputs, fp64 for fp64 (used by gradcheck)."""
    return torch.promote_types(tensor.dtype, torch.float32)
