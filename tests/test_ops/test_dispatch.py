import types

import pytest
import torch

from mmdet_ghm import ops
from mmdet_ghm.losses import GHMCLoss, SigmoidFocalLoss

FAKE_CUDA = types.SimpleNamespace(is_cuda=True, device='cuda:0')


def test_auto_picks_triton_on_cuda_and_torch_on_cpu():
    assert ops.use_triton('X', 'auto', FAKE_CUDA)
    assert not ops.use_triton('X', 'auto', torch.zeros(1))
    assert not ops.use_triton('X', 'torch', FAKE_CUDA)


def test_auto_on_cpu_never_calls_a_kernel(monkeypatch):
    def kernel_called(*args, **kwargs):
        raise AssertionError('kernel called on a CPU tensor with impl=auto')

    for name in ('gradient_histogram', 'ghmc_weighted_bce', 'sigmoid_focal_loss_triton'):
        monkeypatch.setattr(ops, name, kernel_called)
    pred, labels = torch.randn(10, 3), torch.randint(0, 4, (10, ))
    GHMCLoss()(pred, labels)
    SigmoidFocalLoss()(pred, labels)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(ValueError, match='TRITON_INTERPRET=1'):
        ops.use_triton('GHMCLoss', 'triton', torch.zeros(1))


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl must be one of"):
        GHMCLoss(impl='cuda')
