"""fp16 / bf16 inputs against fp32 inputs holding the same values.

The losses compute in fp32 whatever the input dtype, and a half value converts
to fp32 exactly, so the only differences allowed are the order of fp32 sums
(values) and one rounding of the fp32 gradient to the input's dtype. 'sum'
reductions keep the gradients of order 1, so the tolerances below, derived
from each format's epsilon, catch a gradient that is zeroed, scaled or
computed in half precision.


And under autocast: fp32 statistics, finite results.
"""
import pytest
import torch

from ..helpers import BOTH_IMPLS, CLS_LOSSES, LOSSES, loss_and_grad, make_cls_inputs


SUM_RTOL = 64 * torch.finfo(torch.float32).eps  # fp32 sums in another order


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('impl', BOTH_IMPLS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_equal_fp32_inputs_of_the_same_values(name, impl, dtype):
    build, make_inputs = LOSSES[name]
    pred, target, weight = make_inputs(dtype=dtype)
    half_loss, half_grad = loss_and_grad(build(impl), pred, target, weight, reduction_override='sum')
    ref_loss, ref_grad = loss_and_grad(build(impl), pred.float(), target, weight,
                                       reduction_override='sum')
    assert half_loss.dtype == torch.float32 and half_grad.dtype == dtype
    torch.testing.assert_close(half_loss, ref_loss, rtol=SUM_RTOL, atol=0)
    # one rounding of the fp32 gradient to the half format
    info = torch.finfo(dtype)
    torch.testing.assert_close(half_grad.float(), ref_grad, rtol=info.eps,
                               atol=info.smallest_normal)
    assert ref_grad.abs().max() > 1e-2  # gradients of order 1, not vanishing


@pytest.fixture
def no_half_aminmax_on_cpu(monkeypatch):
    """torch.aminmax as torch 2.1 has it: no CPU kernel for fp16."""
    real = torch.aminmax

    def aminmax(tensor, *args, **kwargs):
        if tensor.dtype == torch.float16 and tensor.device.type == 'cpu':
            raise RuntimeError('"aminmax_cpu" not implemented for \'Half\'')
        return real(tensor, *args, **kwargs)

    monkeypatch.setattr(torch, 'aminmax', aminmax)


@pytest.mark.parametrize('name', LOSSES)
def test_half_cpu_inputs_where_torch_has_no_half_aminmax(no_half_aminmax_on_cpu, name):
    build, make_inputs = LOSSES[name]
    pred, target, weight = make_inputs(dtype=torch.float16)
    weight = weight.half()
    value, _ = loss_and_grad(build('torch'), pred, target, weight, reduction_override='sum')
    ref_value, _ = loss_and_grad(build('torch'), pred.float(), target.float()
                                 if target.is_floating_point() else target, weight.float(),
                                 reduction_override='sum')
    torch.testing.assert_close(value, ref_value, rtol=SUM_RTOL, atol=0)
    # the checks still read the fp16 values
    for arg in ('pred', 'weight'):
        bad = {'pred': pred.clone(), 'weight': weight.clone()}
        bad[arg].view(-1)[0] = float('nan')
        with pytest.raises(RuntimeError, match='NaN'):
            build('torch')(bad['pred'], target, bad['weight'])


@pytest.mark.parametrize('make_loss', CLS_LOSSES.values())
def test_cpu_bf16_autocast(make_loss):
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 7)
    features = torch.randn(300, 16) * 4
    _, labels, weight = make_cls_inputs(num_anchors=300)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = layer(features)
        assert logits.dtype == torch.bfloat16
        loss = make_loss()(logits, labels, weight, avg_factor=20.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all() and layer.weight.grad.abs().sum() > 0
