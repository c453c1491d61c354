"""The GHM losses never read a tensor back to the host in forward + backward."""
import pytest
import torch
from mmdet.models.losses import GHMC

from mmdet_ghm.losses import GHMCLoss, GHMRLoss

from ..conftest import make_cls_inputs, make_reg_inputs

SYNCING_METHODS = ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__float__',
                   '__int__')


class HostSync(Exception):
    pass


@pytest.fixture
def forbid_host_sync(monkeypatch):
    def forbid():
        for name in SYNCING_METHODS:
            def raise_sync(*args, _name=name, **kwargs):
                raise HostSync(f'Tensor.{_name} called')

            monkeypatch.setattr(torch.Tensor, name, raise_sync)

    return forbid


def _forward_backward(loss_fn, pred, *args):
    pred = pred.clone().requires_grad_()
    loss_fn(pred, *args).backward()


def test_patch_catches_mmdet_ghmc(forbid_host_sync):
    # mmdet's GHMC calls .item() once per bin: the patch must catch it
    pred, labels, weight = make_cls_inputs()
    ref = GHMC(bins=30, momentum=0.75)
    forbid_host_sync()
    with pytest.raises(HostSync):
        _forward_backward(ref, pred, labels, weight)


@pytest.mark.parametrize('momentum', [0.0, 0.75])
def test_ghmc_no_host_sync(forbid_host_sync, momentum):
    loss = GHMCLoss(momentum=momentum)
    pred, labels, weight = make_cls_inputs()
    one_hot = (labels[:, None] == torch.arange(pred.shape[1])).float()
    forbid_host_sync()
    for _ in range(2):
        _forward_backward(loss, pred, labels, weight)
        _forward_backward(loss, pred, one_hot, None)


@pytest.mark.parametrize('momentum', [0.0, 0.7])
def test_ghmr_no_host_sync(forbid_host_sync, momentum):
    loss = GHMRLoss(momentum=momentum)
    pred, target, weight = make_reg_inputs()
    forbid_host_sync()
    for _ in range(2):
        _forward_backward(loss, pred, target, weight)
