import os

import torch

# Without a GPU, run the Triton kernels in Triton's interpreter (on CPU tensors).
# Must be set before the kernels are decorated, i.e. before mmdet_ghm is imported.
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

import pytest  # noqa: E402

# What a test needs of the installed triton, asked of it at collection (a test
# without what it needs is skipped with the reason):
# - kernels: a triton that builds the kernels (ops.kernel_support());
# - runs_kernels: the kernels really run: on a GPU, or on the CPU in an
#   interpreter that can run them (ops.interpreter_support(): triton >= 3.0).
KERNELS = pytest.mark.kernels
RUNS_KERNELS = pytest.mark.runs_kernels
# impl values of a test that runs both implementations
BOTH_IMPLS = ['torch', pytest.param('triton', marks=RUNS_KERNELS)]


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


def make_cls_inputs(num_anchors=200, num_classes=7, seed=0, scale=3.0,
                    pos_frac=0.1, ignore_frac=0.1, dtype=torch.float32):
    """Random logits, index labels with background (= C) and (N,) label weights
    with some ignored anchors, like RetinaHead passes them."""
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(num_anchors, num_classes, generator=gen) * scale).to(dtype)
    labels = torch.full((num_anchors, ), num_classes, dtype=torch.long)
    pos = torch.rand(num_anchors, generator=gen) < pos_frac
    labels[pos] = torch.randint(0, num_classes, (int(pos.sum()), ), generator=gen)
    weight = (torch.rand(num_anchors, generator=gen) >= ignore_frac).float()
    return pred, labels, weight


def make_reg_inputs(num_anchors=100, seed=0, pos_frac=0.3, dtype=torch.float32):
    """Random box deltas, targets and (N, 4) weights: 1 for positives."""
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(num_anchors, 4, generator=gen) * 0.2).to(dtype)
    target = (torch.randn(num_anchors, 4, generator=gen) * 0.2).to(dtype)
    pos = (torch.rand(num_anchors, generator=gen) < pos_frac).float()
    return pred, target, pos.unsqueeze(1).expand(-1, 4).contiguous()


def _losses():
    from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                                  SigmoidFocalLoss)
    return {
        'GHMCLoss': (lambda impl: GHMCLoss(impl=impl), make_cls_inputs),
        'GHMRLoss': (lambda impl: GHMRLoss(impl=impl), make_reg_inputs),
        'SigmoidFocalLoss': (lambda impl: SigmoidFocalLoss(impl=impl), make_cls_inputs),
        'ClassBalancedFocalLoss': (lambda impl: ClassBalancedFocalLoss(
            class_counts=[90, 30, 10, 5, 3, 2, 1], impl=impl), make_cls_inputs),
    }


# {name: (build(impl) -> loss, make_inputs)} of our four losses
LOSSES = _losses()


@pytest.fixture
def cls_inputs():
    return make_cls_inputs


@pytest.fixture
def reg_inputs():
    return make_reg_inputs
