"""A checkpoint of a RetinaHead trained with mmdet's GHMC/GHMR loads into
GHMRetinaHead with GHMCLoss/GHMRLoss with its EMA carried: mmdet's
``loss_*.acc_sum`` becomes our ``loss_*.density.acc_sum`` (the pre-hook of
mmdet_ghm/losses/mmdet_keys.py), through torch's load_state_dict (strict or not)
and mmengine's load_checkpoint."""
import warnings

import pytest
import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.runner import load_checkpoint
from torch import nn

from ..helpers import GHM_LOSSES, head_cfg
from ..test_dense_heads.test_ghm_retina_head import MMDET_GHM_LOSSES, batch, with_grad

register_all_modules()


def trained_mmdet_head(losses=MMDET_GHM_LOSSES, calls=2):
    """mmdet's RetinaHead with its GHMC/GHMR after ``calls`` training loss calls
    (5 FPN levels each), so that its EMAs are not zero."""
    head = MODELS.build(head_cfg('RetinaHead', losses))
    assert type(head) is RetinaHead
    for seed in range(calls):
        cls_scores, bbox_preds, gts, metas = batch(seed)
        head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    return head


def ours(losses=GHM_LOSSES):
    return MODELS.build(head_cfg('GHMRetinaHead', losses))


def assert_emas_equal(head, ref, exact=True):
    """Bitwise (a loaded EMA) or within fp32 rounding (updated by each loss)."""
    for key in ('loss_cls', 'loss_bbox'):
        expected = getattr(ref, key).acc_sum
        assert expected.abs().sum() > 0
        torch.testing.assert_close(getattr(head, key).density.acc_sum, expected,
                                   **(dict(rtol=0, atol=0) if exact else {}))


def test_mmdet_checkpoint_keys():
    # what the hook maps: mmdet's EMA and edges buffers of each loss
    state = trained_mmdet_head().state_dict()
    assert {'loss_cls.acc_sum', 'loss_cls.edges', 'loss_bbox.acc_sum',
            'loss_bbox.edges'} <= set(state)
    assert {'loss_cls.density.acc_sum', 'loss_bbox.density.acc_sum'} <= set(
        ours().state_dict())


@pytest.mark.parametrize('strict', [True, False])
def test_loads_with_its_ema_through_load_state_dict(strict):
    ref = trained_mmdet_head()
    head = ours()
    result = head.load_state_dict(ref.state_dict(), strict=strict)
    assert not result.missing_keys and not result.unexpected_keys
    assert_emas_equal(head, ref)
    for key, value in ref.state_dict().items():  # the rest of the head too
        if not key.endswith(('acc_sum', 'edges')):
            torch.testing.assert_close(head.state_dict()[key], value, rtol=0, atol=0)
    # training goes on from the same EMA: the same losses, gradients and EMAs
    cls_scores, bbox_preds, gts, metas = batch(7)
    outs = []
    for model in (head, ref):
        maps = with_grad(cls_scores), with_grad(bbox_preds)
        losses = model.loss_by_feat(*maps, gts, metas)
        sum(sum(v) for v in losses.values()).backward()
        outs.append(({k: torch.stack(v).detach() for k, v in losses.items()},
                     [m.grad for m in maps[0] + maps[1]]))
    (values, grads), (ref_values, ref_grads) = outs
    for key in values:
        torch.testing.assert_close(values[key], ref_values[key])
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected)
    assert_emas_equal(head, ref, exact=False)


@pytest.mark.parametrize('strict', [True, False])
def test_loads_with_its_ema_through_mmengine_load_checkpoint(tmp_path, capsys, strict):
    # in a detector the keys are bbox_head.loss_cls.acc_sum, ...
    ref = nn.ModuleDict(dict(bbox_head=trained_mmdet_head()))
    path = tmp_path / 'mmdet_ghm_retinanet.pth'
    torch.save(dict(meta=dict(), state_dict=ref.state_dict()), path)
    model = nn.ModuleDict(dict(bbox_head=ours()))
    load_checkpoint(model, str(path), map_location='cpu', strict=strict)
    # without a logger mmengine prints what does not match (strict=False)
    assert 'do not match' not in capsys.readouterr().out
    assert_emas_equal(model['bbox_head'], ref['bbox_head'])


@pytest.mark.parametrize('key, loss, bins', [
    ('loss_cls', dict(type='GHMC', bins=10, momentum=0.75, use_sigmoid=True), 10),
    ('loss_bbox', dict(type='GHMR', mu=0.02, bins=20, momentum=0.7), 20),
])
def test_other_bins_is_an_error_that_says_what_to_set(key, loss, bins):
    ref = trained_mmdet_head(dict(MMDET_GHM_LOSSES, **{key: loss}), calls=1)
    ours_bins = GHM_LOSSES[key]['bins']
    name = {'loss_cls': 'GHMCLoss', 'loss_bbox': 'GHMRLoss'}[key]
    with pytest.raises(ValueError, match=(
            rf"{name} at '{key}'.*mmdet's {loss['type']} with bins={bins}.*"
            rf'this loss has bins={ours_bins}.*set bins={bins}')):
        ours().load_state_dict(ref.state_dict(), strict=False)


def test_mmdet_momentum_zero_keeps_no_ema_and_ours_starts_from_zero():
    # mmdet's defaults (momentum=0) register no acc_sum; the strict load still
    # works, ours starting its EMA from zero as a new run does, and says so
    defaults = dict(loss_cls=dict(type='GHMC', bins=30, use_sigmoid=True),
                    loss_bbox=dict(type='GHMR', bins=10))
    ref = trained_mmdet_head(defaults, calls=1)
    assert not any(k.endswith('acc_sum') for k in ref.state_dict())
    head = ours()
    head.loss_cls.density.acc_sum.fill_(3.0)
    with pytest.warns(UserWarning, match="momentum=0, which keeps no moving average"):
        head.load_state_dict(ref.state_dict(), strict=True)
    for loss in (head.loss_cls, head.loss_bbox):
        assert torch.equal(loss.density.acc_sum, torch.zeros(loss.density.bins))
    # into ours with momentum 0 too: nothing to warn about
    head = ours(dict(loss_cls=dict(type='GHMCLoss', bins=30, momentum=0.0),
                     loss_bbox=dict(type='GHMRLoss', bins=10, momentum=0.0)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        head.load_state_dict(ref.state_dict(), strict=True)


def test_our_own_checkpoint_is_left_as_it_is():
    head = ours()
    cls_scores, bbox_preds, gts, metas = batch(0)
    head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    state = head.state_dict()
    other = ours()
    other.load_state_dict(state, strict=True)
    for key in ('loss_cls', 'loss_bbox'):
        torch.testing.assert_close(getattr(other, key).density.acc_sum,
                                   getattr(head, key).density.acc_sum, rtol=0, atol=0)


def test_torch_without_the_public_pre_hook_method(monkeypatch):
    # torch releases without Module.register_load_state_dict_pre_hook take the
    # hook through the private method, with the module passed
    monkeypatch.delattr(nn.Module, 'register_load_state_dict_pre_hook')
    ref = trained_mmdet_head(calls=1)
    head = ours()
    head.load_state_dict(ref.state_dict(), strict=True)
    assert_emas_equal(head, ref)
