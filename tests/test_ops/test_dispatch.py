import types
import warnings

import pytest
import torch

from mmdet_ghm import ops
from mmdet_ghm.losses import GHMCLoss, GHMRLoss, SigmoidFocalLoss
from mmdet_ghm.ops import dispatch

from ..helpers import KERNELS, LOSSES, RUNS_KERNELS, make_cls_inputs

FAKE_CUDA = types.SimpleNamespace(is_cuda=True, device='cuda:0')


@pytest.fixture
def fresh_dispatch(monkeypatch):
    """A dispatcher that has seen no kernel failure and decides support anew;
    restores both afterwards."""
    monkeypatch.setattr(dispatch, '_failure', None)
    dispatch.kernel_support.cache_clear()
    yield dispatch
    dispatch.kernel_support.cache_clear()


@pytest.fixture
def cpu_as_gpu(monkeypatch, fresh_dispatch):
    """impl='auto' takes the kernel path for CPU tensors (run by the interpreter)."""
    monkeypatch.setattr(dispatch, 'is_gpu_tensor', lambda tensor: True)
    return fresh_dispatch


@KERNELS
def test_auto_picks_triton_on_cuda_and_torch_on_cpu():
    assert ops.use_triton('X', 'auto', FAKE_CUDA)
    assert not ops.use_triton('X', 'auto', torch.zeros(1))
    assert not ops.use_triton('X', 'torch', FAKE_CUDA)


def test_auto_on_cpu_never_calls_a_kernel():
    def kernel_called(*args, **kwargs):
        raise AssertionError('kernel launched on a CPU tensor with impl=auto')

    pred, labels = torch.randn(10, 3), torch.randint(0, 4, (10, ))
    with dispatch.intercept_launches(kernel_called):
        GHMCLoss()(pred, labels)
        SigmoidFocalLoss()(pred, labels)
        GHMRLoss()(pred[:, :2], pred[:, 1:])


@KERNELS
def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(ValueError, match='TRITON_INTERPRET=1'):
        ops.use_triton('GHMCLoss', 'triton', torch.zeros(1))


@pytest.mark.parametrize('version', ['2.0.0', '1.0.1'])
def test_old_triton_runs_the_torch_implementation(monkeypatch, fresh_dispatch, version):
    monkeypatch.setattr(dispatch, 'triton_available', lambda: True)
    monkeypatch.setattr(dispatch, 'triton_version', lambda: version)
    assert 'older than 2.1' in dispatch.kernel_support()
    assert not ops.use_triton('GHMCLoss', 'auto', FAKE_CUDA)
    with pytest.raises(RuntimeError, match=rf"triton {version} is older.*Install triton >= 2.1"):
        ops.use_triton('GHMCLoss', 'triton', FAKE_CUDA)


@pytest.mark.parametrize('version', ['2.1.0', '2.2.0', '2.3.1'])
def test_triton_2_runs_the_kernels_on_gpus_only(monkeypatch, fresh_dispatch, version):
    """torch 2.1 to 2.3 pin these: the kernels build, but no interpreter of
    theirs can run them on the CPU, and impl='triton' says so."""
    monkeypatch.setattr(dispatch, 'triton_available', lambda: True)
    monkeypatch.setattr(dispatch, 'triton_version', lambda: version)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    assert dispatch.kernel_support() is None
    assert ops.use_triton('GHMCLoss', 'auto', FAKE_CUDA)
    assert f'interpreter of triton {version}' in dispatch.interpreter_support()
    assert not ops.use_triton('GHMCLoss', 'auto', torch.zeros(1))
    with pytest.raises(RuntimeError, match=rf"interpreter of triton {version}.*impl='auto'"):
        ops.use_triton('GHMCLoss', 'triton', torch.zeros(1))


@pytest.mark.parametrize('version', ['3.0.0', '3.9.0'])
def test_triton_3_interpreter_runs_the_kernels(monkeypatch, fresh_dispatch, version):
    monkeypatch.setattr(dispatch, 'triton_available', lambda: True)
    monkeypatch.setattr(dispatch, 'triton_version', lambda: version)
    assert dispatch.kernel_support() is None and dispatch.interpreter_support() is None


@KERNELS
def test_support_is_decided_once(monkeypatch, fresh_dispatch):
    calls = []
    monkeypatch.setattr(dispatch, 'triton_version', lambda: calls.append(1) or '3.9.0')
    for _ in range(3):
        ops.use_triton('GHMCLoss', 'auto', FAKE_CUDA)
    assert len(calls) == 1


def failing_launch(kernel_names):
    """Launch and build hooks (``intercept_launches(*failing_launch(...))``) that
    fail like a compile error for the named kernels and run (or build) the others
    (in the interpreter here)."""
    def fail(kernel):
        if kernel.fn.__name__ in kernel_names:
            raise RuntimeError(f'PassManager::run failed (simulated, {kernel.fn.__name__})')

    def launch(kernel, grid, args, kwargs):
        fail(kernel)
        kernel[grid](*args, **kwargs)

    def build(kernel, grid, args, kwargs):
        fail(kernel)
        kernel.run(*args, grid=grid, warmup=True, **kwargs)
    return launch, build


def forward_backward(loss, pred, *args):
    pred = pred.clone().requires_grad_()
    value = loss(pred, *args)
    value.backward()
    return value.detach(), pred.grad


ALL_KERNELS = ('_histogram_kernel', '_ghmc_forward_kernel', '_ghmc_backward_kernel',
               '_focal_forward_kernel', '_focal_backward_kernel',
               '_equalized_focal_forward_kernel', '_equalized_focal_backward_kernel')


@RUNS_KERNELS
@pytest.mark.parametrize('name, failing', [
    (name, failing) for name in LOSSES for failing in ('forward', 'backward')
    if not (name == 'GHMRLoss' and failing == 'backward')])  # GHM-R: histogram only
def test_compile_failure_warns_once_and_training_goes_on(cpu_as_gpu, name, failing):
    build, make_inputs = LOSSES[name]
    kernels = [k for k in ALL_KERNELS if failing in k or failing == 'forward']
    auto, torch_impl = build('auto'), build('torch')
    with dispatch.intercept_launches(*failing_launch(kernels)), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for step in range(3):  # the first fails over, the others run the PyTorch implementation
            inputs = make_inputs(seed=step)
            value, grad = forward_backward(auto, *inputs)
            ref_value, ref_grad = forward_backward(torch_impl, *inputs)
            torch.testing.assert_close(value, ref_value)
            torch.testing.assert_close(grad, ref_grad)
            if hasattr(auto, 'density'):  # the EMA was updated exactly once per call
                torch.testing.assert_close(auto.density.acc_sum, torch_impl.density.acc_sum)
    # (the interpreter's numpy also warns, of log(0) in the focal kernel)
    messages = [str(w.message) for w in caught if 'Triton kernel failed' in str(w.message)]
    assert len(messages) == 1, messages
    assert name in messages[0] and 'triton 3.' in messages[0]
    assert 'PassManager::run failed' in messages[0]
    assert not ops.use_triton(name, 'auto', FAKE_CUDA)  # the PyTorch implementation from now on


@RUNS_KERNELS
def test_ghmc_loss_kernel_failure_after_histogram_counts_once(cpu_as_gpu):
    """The histogram kernel ran and updated the EMA; the loss kernel fails: the
    PyTorch implementation must reuse those weights, not update the EMA a second time."""
    auto, torch_impl = GHMCLoss(impl='auto'), GHMCLoss(impl='torch')
    pred, labels, weight = make_cls_inputs()
    with dispatch.intercept_launches(*failing_launch(['_ghmc_forward_kernel'])), \
            pytest.warns(RuntimeWarning, match='_ghmc_forward_kernel'):
        value, grad = forward_backward(auto, pred, labels, weight)
    ref_value, ref_grad = forward_backward(torch_impl, pred, labels, weight)
    torch.testing.assert_close(auto.density.acc_sum, torch_impl.density.acc_sum)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


@KERNELS
def test_impl_triton_fails_loudly(cpu_as_gpu):
    pred, labels, weight = make_cls_inputs()
    with dispatch.intercept_launches(*failing_launch(ALL_KERNELS)), \
            pytest.raises(RuntimeError, match='simulated'):
        GHMCLoss(impl='triton')(pred, labels, weight)
    assert dispatch._failure is None
