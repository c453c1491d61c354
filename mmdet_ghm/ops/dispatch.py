"""Picks the Triton kernels or their PyTorch twins.

``impl='auto'`` runs Triton on CUDA tensors when Triton is importable and the
PyTorch twin everywhere else. ``impl='triton'`` insists on the kernels; on CPU
tensors that works only under ``TRITON_INTERPRET=1`` (Triton's interpreter, slow,
used by the tests). ``impl='torch'`` always runs the twin.
"""
import importlib.util
import os

from torch import Tensor

IMPLS = ('auto', 'triton', 'torch')


def triton_available() -> bool:
    return importlib.util.find_spec('triton') is not None


def interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET') == '1'


def check_impl(owner: str, impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f'{owner}: impl must be one of {IMPLS}, got {impl!r}.')


def use_triton(owner: str, impl: str, tensor: Tensor) -> bool:
    """Whether ``owner`` runs its Triton kernels on ``tensor``."""
    if impl == 'torch':
        return False
    if impl == 'auto':
        return tensor.is_cuda and triton_available()
    if not triton_available():
        raise ImportError(f"{owner}: impl='triton' needs the triton package "
                          "(pip install triton), or use impl='auto'.")
    if not (tensor.is_cuda or interpreting()):
        raise ValueError(f"{owner}: impl='triton' runs on CUDA tensors, got a "
                         f'{tensor.device} tensor; set TRITON_INTERPRET=1 to run the '
                         "kernels on the CPU (slowly), or use impl='auto'.")
    return True
