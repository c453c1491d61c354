"""Picks the Triton kernels or the PyTorch implementations, and launches the kernels.

``impl='auto'`` runs the kernels on CUDA tensors when the installed triton can
build them (:func:`kernel_support`, decided once per process) and the PyTorch
implementation everywhere else. If a kernel still fails to compile or launch, the
loss warns once and runs the PyTorch implementations from then on: training never
stops because of our kernels. ``impl='triton'`` insists on the kernels and raises;
on CPU tensors it works only under ``TRITON_INTERPRET=1`` with triton >= 3.0
(Triton's interpreter, slow, used by the tests; :func:`interpreter_support`).
``impl='torch'`` always runs the PyTorch implementation.

Every kernel launch goes through :func:`launch` and every build ahead of a
launch through :func:`build`, so a tool can intercept them all
(:func:`intercept_launches`): the ahead-of-time compile check and the
no-host-sync test use that.
"""
import contextlib
import functools
import importlib.util
import os
import re
import warnings
from typing import Callable, Optional

from torch import Tensor

IMPLS = ('auto', 'triton', 'torch')
# Oldest triton the kernels build with (torch 2.1 pins triton 2.1); proven by
# `make compat`, see the table in docs/kernels.md.
MIN_TRITON = (2, 1)
MIN_TRITON_TEXT = '.'.join(map(str, MIN_TRITON))
# Oldest triton whose CPU interpreter runs the kernels: 2.1 has none, and those of
# 2.2 and 2.3 lack atomics and integer casts.
MIN_INTERPRETER = (3, 0)

# The first kernel failure under impl='auto' (a message), after which every loss
# runs its PyTorch implementation; None while the kernels work.
_failure: Optional[str] = None
_launch_hook: Optional[Callable] = None
_build_hook: Optional[Callable] = None


def triton_available() -> bool:
    return importlib.util.find_spec('triton') is not None


def triton_version() -> str:
    import triton
    return triton.__version__


def parse_version(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r'\d+', version)[:2])


@functools.lru_cache(maxsize=None)
def kernel_support() -> Optional[str]:
    """None when the installed triton can build the kernels, else the reason."""
    if not triton_available():
        return 'triton is not installed'
    version = triton_version()
    if parse_version(version) < MIN_TRITON:
        return f'triton {version} is older than {MIN_TRITON_TEXT} (torch < 2.1)'
    return None


def interpreter_support() -> Optional[str]:
    """None when Triton's CPU interpreter can run the kernels, else the reason."""
    reason = kernel_support()
    if reason is not None:
        return reason
    version = triton_version()
    if parse_version(version) < MIN_INTERPRETER:
        return (f'the interpreter of triton {version} cannot run the kernels '
                '(triton >= 3.0 needed)')
    return None


def interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET') == '1'


def is_gpu_tensor(tensor: Tensor) -> bool:
    return tensor.is_cuda


def check_impl(loss_name: str, impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f'{loss_name}: impl must be one of {IMPLS}, got {impl!r}.')


def use_triton(loss_name: str, impl: str, tensor: Tensor) -> bool:
    """Whether ``loss_name`` runs its Triton kernels on ``tensor``."""
    if impl == 'torch':
        return False
    if impl == 'auto':
        return is_gpu_tensor(tensor) and _failure is None and kernel_support() is None
    reason = kernel_support()
    if reason is not None:
        raise RuntimeError(
            f"{loss_name}: impl='triton' cannot run: {reason}. Install triton >= "
            f"{MIN_TRITON_TEXT} (the one torch >= 2.1 brings), or use "
            "impl='auto', which runs the PyTorch implementation where the kernels "
            'cannot.')
    if is_gpu_tensor(tensor):
        return True
    if not interpreting():
        raise ValueError(f"{loss_name}: impl='triton' runs on CUDA tensors, got a "
                         f'{tensor.device} tensor; set TRITON_INTERPRET=1 to run the '
                         "kernels on the CPU (slowly), or use impl='auto'.")
    reason = interpreter_support()
    if reason is not None:
        raise RuntimeError(f"{loss_name}: impl='triton' on a {tensor.device} tensor cannot "
                           f"run: {reason}. Use impl='auto' on the CPU.")
    return True


def launch(kernel, grid, *args, **kwargs) -> None:
    """``kernel[grid](*args, **kwargs)``, or the hook of :func:`intercept_launches`."""
    if _launch_hook is not None:
        _launch_hook(kernel, grid, args, kwargs)
    else:
        kernel[grid](*args, **kwargs)


def build(kernel, grid, *args, **kwargs) -> None:
    """Compiles the specialisation of ``kernel`` that these arguments select,
    without launching it (``JITFunction.run(warmup=True)``, the same on every
    triton release; the interpreter has nothing to build). A forward builds its
    backward kernel this way, so a compile error is raised in the forward, where
    the loss can still run its PyTorch implementation. Through the ``build``
    hook of :func:`intercept_launches` where one is set."""
    if _build_hook is not None:
        _build_hook(kernel, grid, args, kwargs)
    elif _launch_hook is None:
        kernel.run(*args, grid=grid, warmup=True, **kwargs)


@contextlib.contextmanager
def intercept_launches(hook: Callable, build: Optional[Callable] = None):
    """Calls ``hook(kernel, grid, args, kwargs)`` instead of launching kernels,
    and ``build(kernel, grid, args, kwargs)`` instead of building them
    (:func:`build`); without ``build`` nothing is built meanwhile."""
    global _launch_hook, _build_hook
    previous = _launch_hook, _build_hook
    _launch_hook, _build_hook = hook, build
    try:
        yield
    finally:
        _launch_hook, _build_hook = previous


def _give_up_kernels(loss_name: str, error: Exception) -> None:
    global _failure
    version = triton_version() if triton_available() else 'not installed'
    _failure = f'{loss_name}: {type(error).__name__}: {error}'
    warnings.warn(
        f"{loss_name}: a Triton kernel failed to compile or launch with triton {version} "
        f'({type(error).__name__}: {error}). Every loss of mmdet_ghm runs its PyTorch '
        "implementation from now on (same results, slower); impl='triton' shows "
        'the full error. Please report it with your torch and triton versions.',
        RuntimeWarning, stacklevel=3)


def kernel_or_torch(loss_name: str, impl: str, tensor: Tensor, kernel: Callable,
                    torch_impl: Callable):
    """``kernel()`` where :func:`use_triton` says so, else ``torch_impl()``; both
    take no argument and compute the same thing.

    A kernel entry launches its forward kernel and builds its backward kernel
    (:func:`build`) before it returns, so every compile error surfaces here.
    Under impl='auto' such an error warns once and returns ``torch_impl()``, and
    every later call runs the PyTorch implementations; impl='triton' raises it.
    """
    if not use_triton(loss_name, impl, tensor):
        return torch_impl()
    if impl == 'triton':
        return kernel()
    try:
        return kernel()
    except Exception as error:  # a compile or launch error of any triton release
        _give_up_kernels(loss_name, error)
        return torch_impl()
