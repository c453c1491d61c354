"""Row chunks of an (N, C) tensor for the CPU twins.

A twin that works on blocks of about a million elements keeps every
temporary small: the allocator reuses the blocks instead of asking the system
for (and faulting in) fresh pages for each N x C temporary, which at 400,000 x
80 costs more than the arithmetic.
"""
from typing import List, Optional

from torch import Tensor

CHUNK_ELEMENTS = 1 << 20


def row_chunks(tensor: Tensor) -> List[slice]:
    """Slices of consecutive rows of about ``CHUNK_ELEMENTS`` elements each."""
    rows = max(1, CHUNK_ELEMENTS // max(tensor.shape[1], 1))
    return [slice(start, start + rows) for start in range(0, tensor.shape[0], rows)]


def rows_of(tensor: Optional[Tensor], rows: slice) -> Optional[Tensor]:
    """``tensor[rows]``; None stays None."""
    return None if tensor is None else tensor[rows]
