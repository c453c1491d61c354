"""No loss makes the host wait for a CUDA device in forward + backward.

Each loss runs on tensors without data (the ``meta`` device: shapes and
dtypes only, so no GPU is needed) under a dispatch mode that fails on every
aten op that synchronises on CUDA. The code distinguishes only the CPU from
other devices, so meta tensors take the CUDA code path; the dispatcher is told
to treat them as CUDA tensors for the kernel path, whose launches are
intercepted (what surrounds the kernels is what could sync). Both paths run:
the PyTorch implementation and the kernels. (Fake CUDA tensors cannot run backward on a
CPU-only torch: autograd asks for a CUDA device guard.)
"""
import pytest
import torch
from mmdet.models.losses import GHMC, GHMR
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet_ghm.functional import one_hot_labels
from mmdet_ghm.losses import GHMCLoss
from mmdet_ghm.ops import dispatch

from ..helpers import LOSSES as EVERY_LOSS
from ..helpers import KERNELS, make_cls_inputs, make_reg_inputs

# Ops whose CUDA implementation reads a tensor back to the host: to size an
# output (nonzero, masked_select, bincount, unique, repeat_interleave without
# output_size), or to return a Python value (item, bool, equal).
SYNCING_OPS = {
    'aten::nonzero', 'aten::argwhere', 'aten::masked_select', 'aten::bincount',
    'aten::_unique', 'aten::_unique2', 'aten::unique_dim', 'aten::unique_consecutive',
    'aten::_local_scalar_dense', 'aten::is_nonzero', 'aten::equal', 'aten::allclose',
    'aten::one_hot', 'aten::histogram',
}
BOOL_INDEXING_OPS = {'aten::index', 'aten::index_put', 'aten::index_put_',
                     'aten::_index_put_impl_'}


DEVICE = torch.device('meta')


class HostSync(Exception):
    pass


def _syncing(func, args, kwargs) -> str:
    """Why ``func(*args, **kwargs)`` synchronises on CUDA, or ''."""
    name = func._schema.name
    if name in SYNCING_OPS:
        return name
    if name == 'aten::repeat_interleave' and kwargs.get('output_size') is None:
        return f'{name} without output_size'
    if name in BOOL_INDEXING_OPS:
        indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
            return f'{name} with a boolean mask'
    if name in ('aten::_to_copy', 'aten::copy_'):
        src = args[1] if name == 'aten::copy_' else args[0]
        dst = args[0].device if name == 'aten::copy_' else kwargs.get('device')
        if src.device.type != 'cpu' and dst is not None and torch.device(dst).type == 'cpu':
            return f'{name} from CUDA to the host'
    return ''


class ForbidHostSync(TorchDispatchMode):
    """Raises HostSync on the first op that synchronises on CUDA."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = _syncing(func, args, kwargs)
        if reason:
            raise HostSync(reason)
        return func(*args, **kwargs)


def run_without_data(build_loss, make_inputs, targets='index', kernels=False):
    """forward + backward of ``build_loss()`` on meta tensors, no sync allowed;
    returns the names of the kernels it would have launched."""
    launched = []
    loss = build_loss().to(DEVICE)
    pred, target, weight = (t.to(DEVICE) for t in make_inputs())
    if targets == 'dense':
        target = one_hot_labels(target, pred.shape[1])
    elif targets == 'quality':  # (labels, scores), as GFL, TOOD and RTMDet pass them
        target = (target, torch.rand(target.shape).to(DEVICE))
    pred.requires_grad_()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, 'is_gpu_tensor', lambda tensor: kernels)
        with dispatch.intercept_launches(lambda k, *_: launched.append(k.fn.__name__)), \
                ForbidHostSync():
            for _ in range(2):  # the second call reads the EMA the first wrote
                loss(pred, target, weight).backward()
    return launched


LOSSES = dict(EVERY_LOSS, **{'GHMCLoss(momentum=0)': (
    lambda impl: GHMCLoss(momentum=0.0, impl=impl), make_cls_inputs)})


# auto: the kernels on CUDA
@pytest.mark.parametrize('impl', ['torch', pytest.param('auto', marks=KERNELS)])
@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('targets', ['index', 'dense', 'quality'])
def test_loss_never_syncs_on_cuda(name, impl, targets):
    build, make_inputs = LOSSES[name]
    if targets != 'index' and make_inputs is make_reg_inputs:
        pytest.skip('GHM-R has dense targets only')
    launched = run_without_data(lambda: build(impl=impl), make_inputs, targets=targets,
                                kernels=impl == 'auto')
    # the kernel path really ran its kernels; the PyTorch implementation launched none
    assert bool(launched) == (impl == 'auto'), launched


@pytest.mark.parametrize('impl', ['torch', pytest.param('auto', marks=KERNELS)])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_never_sync_on_cuda(dtype, impl):
    run_without_data(lambda: GHMCLoss(impl=impl), lambda: make_cls_inputs(dtype=dtype),
                     kernels=impl == 'auto')


@pytest.mark.parametrize('reference, make_inputs', [(GHMC, make_cls_inputs),
                                                     (GHMR, make_reg_inputs)])
def test_mmdet_ghm_losses_are_caught(reference, make_inputs):
    # mmdet's GHMC / GHMR read counts back with .item() and index by masks
    with pytest.raises(HostSync):
        run_without_data(reference, make_inputs)


@pytest.mark.parametrize('op', [
    lambda x: x.nonzero(), lambda x: x[x > 0], lambda x: x.sum().item(),
    lambda x: torch.bincount((x > 0).long()), lambda x: bool(x.sum() > 0),
    lambda x: x.unique(), lambda x: x.cpu(),
    lambda x: torch.repeat_interleave((x > 0).long()[:3]),
])
def test_guard_catches_each_syncing_op(op):
    x = torch.randn(5).to(DEVICE)
    with ForbidHostSync(), pytest.raises(HostSync):
        op(x)
