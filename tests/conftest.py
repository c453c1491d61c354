import os

import torch

# Without a GPU, run the Triton kernels in Triton's interpreter (on CPU tensors).
# Must be set before the kernels are decorated, i.e. before mmdet_ghm is imported.
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line('markers', 'kernels: needs a triton that builds the kernels')
    config.addinivalue_line('markers', 'runs_kernels: runs the Triton kernels (a GPU, or '
                            "triton >= 3.0's interpreter on the CPU)")


def pytest_collection_modifyitems(config, items):
    from mmdet_ghm import ops

    build = ops.kernel_support()
    run = build if torch.cuda.is_available() else ops.interpreter_support()
    for item in items:
        if build is not None and item.get_closest_marker('kernels'):
            item.add_marker(pytest.mark.skip(reason=f'the kernels cannot build: {build}'))
        elif run is not None and item.get_closest_marker('runs_kernels'):
            item.add_marker(pytest.mark.skip(reason=f'the kernels cannot run here: {run}'))
