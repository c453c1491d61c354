"""The equalized focal kernels (the loss and its per-class gradient statistics in
one forward pass, the gradient in the backward) against a float64 PyTorch
reference (Triton's interpreter on the CPU here)."""
import pytest
import torch

from mmdet_ghm.functional.equalized_focal import (equalized_factors, equalized_focal_grad,
                                                  equalized_focal_loss as efl_reference)
from mmdet_ghm.functional.focal import sigmoid_focal_loss
from mmdet_ghm.functional.targets import one_hot_labels
from mmdet_ghm.ops import dispatch, equalized_focal_triton, focal_triton
from mmdet_ghm.ops.equalized_focal_triton import ROWS_PER_PROGRAM, TILE, TILE_COLS, tile_shape
from mmdet_ghm.ops.inputs import weight_layout

from ..helpers import RUNS_KERNELS, make_cls_inputs, ramp_like

pytestmark = RUNS_KERNELS


def equalized_focal_loss(pred, target, weight, *args):
    """The kernel entry, given the weights in the layout the input normaliser picks."""
    return equalized_focal_triton.equalized_focal_loss(pred, target, None,
                                                       *weight_layout(weight), *args)

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
EPS = torch.finfo(torch.float32).eps
# The kernels compute in fp32 whatever the logits' dtype; against the fp64
# reference an element is off by a few dozen eps (gamma_c up to 10 scales the
# error of log(1 - p_t)), a sum of positive terms by no more in relative terms.
ELEMENT_RTOL = 64 * EPS
SUM_RTOL = 256 * EPS
NUM_ROWS = 301  # not a multiple of any tile's rows, nor of ROWS_PER_PROGRAM: 2 row groups


def grad_tol(dtype, grad_ref):
    """The fp32 tolerance, plus the rounding of the stored gradient to ``dtype``:
    under one eps relative (to nearest on a GPU; the interpreter truncates to
    bf16), and the spacing of its subnormals."""
    finfo = torch.finfo(dtype)
    return dict(rtol=ELEMENT_RTOL + finfo.eps,
                atol=ELEMENT_RTOL * grad_ref.abs().max().item() + finfo.tiny * finfo.eps)


def efl_coefficients(num_classes, alpha=True, seed=0):
    """(gamma, alpha, class_weight, pos_weight) as (C,) fp32 vectors: the
    equalized focal factors of random gradient ratios g_j in [0, 1] (gamma_j =
    2 + 8 (1 - g_j), weight gamma_j / 2), a per-class alpha and pos_weight."""
    gen = torch.Generator().manual_seed(seed + 100)
    pos_neg = torch.rand(num_classes, generator=gen)
    pos_neg[0] = 1.0  # one column without reweighting: plain focal
    gamma, class_weight = equalized_factors(pos_neg, 2.0, 8.0)
    alpha_vec = 0.1 + 0.5 * torch.rand(num_classes, generator=gen) if alpha else None
    pos_weight = 0.5 + torch.rand(num_classes, generator=gen)
    return tuple(None if v is None else v.to(DEVICE) for v in
                 (gamma, alpha_vec, class_weight, pos_weight))


def make_case(num_rows, num_classes, target='index', weight='row', dtype=torch.float32,
              seed=0):
    """Logits, targets and label weights of one layout, with ignored elements."""
    pred, labels, row_weight = make_cls_inputs(num_anchors=num_rows, num_classes=num_classes,
                                               seed=seed, pos_frac=0.3, dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    hot = one_hot_labels(labels, num_classes)
    if target == 'index':
        target_t = labels
    elif target == 'dense':
        target_t = hot
    else:  # soft: quality-like scores on the label columns, small ones elsewhere, some 0
        score = torch.rand(num_rows, num_classes, generator=gen)
        noise = torch.rand(num_rows, num_classes, generator=gen) ** 4
        noise = noise * (torch.rand(num_rows, num_classes, generator=gen) < 0.5)
        target_t = torch.where(hot > 0, score, noise)
    if weight == 'none':
        weight_t = None
    elif weight == 'row':
        weight_t = row_weight
    elif weight == 'dense':
        weight_t = (0.5 + torch.rand(num_rows, num_classes, generator=gen)) * (
            torch.rand(num_rows, num_classes, generator=gen) >= 0.1)
    else:  # expanded: an (N, 1) -> (N, C) view, stride 0 along the classes
        weight_t = row_weight[:, None].expand(num_rows, num_classes)
    return [None if t is None else t.to(DEVICE) for t in (pred, target_t, weight_t)]


def dense_target(target, num_classes):
    return one_hot_labels(target, num_classes) if target.dim() == 1 else target


def reference(pred, target, weight, gamma, alpha, class_weight, pos_weight):
    """fp64 (N, C) element losses, ``d sum(losses) / dx`` and the (2, C)
    statistics, from ``functional.focal.sigmoid_focal_loss`` with a (C,) gamma."""
    x = pred.detach().double().requires_grad_()
    y = dense_target(target, pred.shape[1]).double()
    loss = sigmoid_focal_loss(x, y, gamma=gamma.double(),
                              alpha=None if alpha is None else alpha.double(),
                              class_weight=class_weight.double(),
                              pos_weight=pos_weight.double())
    if weight is not None:
        loss = loss * (weight.double()[:, None] if weight.dim() == 1 else weight.double())
    grad, = torch.autograd.grad(loss.sum(), x)
    stats = torch.stack([(y * grad.abs()).sum(0), ((1 - y) * grad.abs()).sum(0)])
    return loss.detach(), grad, stats


def kernel_loss_and_grad(pred, *args, reduce):
    """The kernel's loss, statistics and the gradient of ``pred`` back-propagating
    1 (sum) or a ramp over the elements ('none')."""
    x = pred.detach().clone().requires_grad_()
    loss, stats = equalized_focal_loss(x, *args, reduce)
    grad_out = torch.ones_like(loss) if reduce else ramp_like(loss).to(DEVICE)
    loss.backward(grad_out)
    return loss.detach(), stats, x.grad, grad_out


def check_against_reference(pred, target, weight, coefficients, reduce):
    loss, stats, grad, grad_out = kernel_loss_and_grad(pred, target, weight, *coefficients,
                                                       reduce=reduce)
    ref_loss, ref_grad, ref_stats = reference(pred, target, weight, *coefficients)
    assert loss.dtype == torch.float32 and stats.dtype == torch.float32
    assert grad.dtype == pred.dtype and stats.shape == (2, pred.shape[1])
    assert not stats.requires_grad
    if reduce:
        assert loss.dim() == 0
        torch.testing.assert_close(loss.double(), ref_loss.sum(), rtol=SUM_RTOL, atol=0)
    else:
        assert loss.shape == pred.shape
        torch.testing.assert_close(loss.double(), ref_loss, rtol=ELEMENT_RTOL,
                                   atol=ELEMENT_RTOL * ref_loss.abs().max().item())
    expected_grad = ref_grad * grad_out.double()
    torch.testing.assert_close(grad.double(), expected_grad,
                               **grad_tol(pred.dtype, expected_grad))
    torch.testing.assert_close(stats.double(), ref_stats, rtol=SUM_RTOL,
                               atol=ELEMENT_RTOL * ref_grad.abs().max().item())
    return stats


@pytest.mark.parametrize('reduce', [True, False], ids=['sum', 'none'])
@pytest.mark.parametrize('alpha', [True, False], ids=['alpha', 'no alpha'])
@pytest.mark.parametrize('weight', ['none', 'row', 'dense', 'expanded'])
@pytest.mark.parametrize('target', ['index', 'dense', 'soft'])
def test_layouts_equal_reference(target, weight, alpha, reduce):
    pred, target_t, weight_t = make_case(NUM_ROWS, 37, target, weight)
    check_against_reference(pred, target_t, weight_t, efl_coefficients(37, alpha), reduce)


# C: small, unaligned, COCO, wide and LVIS; rows not a multiple of any tile's
# rows, the LVIS case over one row group to keep the interpreter quick
@pytest.mark.parametrize('num_rows, num_classes', [(517, 7), (517, 37), (517, 80), (517, 300),
                                                   (45, 1203)])
@pytest.mark.parametrize('reduce', [True, False], ids=['sum', 'none'])
def test_num_classes(num_rows, num_classes, reduce):
    pred, target, weight = make_case(num_rows, num_classes, seed=num_classes)
    check_against_reference(pred, target, weight,
                            efl_coefficients(num_classes, seed=num_classes), reduce)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16],
                         ids=['fp32', 'fp16', 'bf16'])
@pytest.mark.parametrize('target', ['index', 'soft'])
@pytest.mark.parametrize('reduce', [True, False], ids=['sum', 'none'])
def test_dtypes(dtype, target, reduce):
    # the reference reads the same (rounded) logits: only the stored gradient is
    # held to the dtype's precision, loss and statistics to fp32's
    pred, target_t, weight = make_case(NUM_ROWS, 80, target, 'row', dtype=dtype)
    check_against_reference(pred, target_t, weight, efl_coefficients(80), reduce)


def test_non_contiguous_inputs():
    pred, target, weight = make_case(NUM_ROWS, 37, 'soft', 'dense')
    strided = [t.t().contiguous().t() for t in (pred, target, weight)]
    assert not any(t.is_contiguous() for t in strided)
    for reduce in (True, False):
        stats = check_against_reference(*strided, efl_coefficients(37), reduce)
        assert torch.equal(stats, equalized_focal_loss(pred, target, weight,
                                                       *efl_coefficients(37), reduce)[1])


def test_equals_the_authors_factors():
    """With gamma_j, gamma_j / gamma_b and a scalar alpha the kernel is the
    functional equalized focal loss, value and closed-form gradient."""
    num_classes = 80
    pred, labels, weight = make_case(NUM_ROWS, num_classes, seed=3)
    pos_neg = torch.rand(num_classes, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    gamma, factor = equalized_factors(pos_neg, 2.0, 8.0)
    coefficients = (gamma, torch.full_like(gamma, 0.25), factor, torch.ones_like(gamma))
    loss, stats, grad, grad_out = kernel_loss_and_grad(pred, labels, weight, *coefficients,
                                                       reduce=False)
    y = one_hot_labels(labels, num_classes).double()
    row_weight = weight.double()[:, None]
    ref_loss = efl_reference(pred.double(), y, pos_neg, 2.0, 0.25, 8.0) * row_weight
    ref_grad = equalized_focal_grad(pred.double(), y, pos_neg, 2.0, 0.25, 8.0) * row_weight
    torch.testing.assert_close(loss.double(), ref_loss, rtol=ELEMENT_RTOL,
                               atol=ELEMENT_RTOL * ref_loss.abs().max().item())
    expected_grad = ref_grad * grad_out.double()
    torch.testing.assert_close(grad.double(), expected_grad,
                               **grad_tol(torch.float32, expected_grad))
    ref_stats = torch.stack([(y * ref_grad.abs()).sum(0), ((1 - y) * ref_grad.abs()).sum(0)])
    torch.testing.assert_close(stats.double(), ref_stats, rtol=SUM_RTOL,
                               atol=ELEMENT_RTOL * ref_grad.abs().max().item())


def test_constant_gamma_is_the_focal_kernel():
    pred, labels, weight = make_case(NUM_ROWS, 37)
    gamma, alpha, class_weight, pos_weight = efl_coefficients(37)
    for reduce in (True, False):
        loss, _, grad, grad_out = kernel_loss_and_grad(
            pred, labels, weight, torch.full_like(gamma, 2.0), alpha, class_weight,
            pos_weight, reduce=reduce)
        x = pred.detach().clone().requires_grad_()
        focal = focal_triton.sigmoid_focal_loss(x, labels, None, *weight_layout(weight), 2.0,
                                                alpha, class_weight, pos_weight, reduce)
        focal.backward(grad_out)
        torch.testing.assert_close(loss, focal.detach(), rtol=4 * EPS, atol=0)
        torch.testing.assert_close(grad, x.grad, rtol=4 * EPS, atol=0)


def test_ignored_elements_add_nothing():
    pred, labels, weight = make_case(NUM_ROWS, 37)
    coefficients = efl_coefficients(37)
    ignored = torch.zeros_like(weight)
    ignored[::3] = 1.0  # a third of the rows kept
    loss, stats = equalized_focal_loss(pred, labels, ignored, *coefficients, False)
    kept_loss, kept_stats = equalized_focal_loss(pred[::3], labels[::3], None,
                                                 *coefficients, False)
    assert torch.equal(loss[1::3], torch.zeros_like(loss[1::3]))
    torch.testing.assert_close(loss[::3], kept_loss, rtol=0, atol=0)
    torch.testing.assert_close(stats, kept_stats, rtol=SUM_RTOL, atol=0)
    all_ignored = equalized_focal_loss(pred, labels, torch.zeros_like(weight),
                                       *coefficients, True)
    assert all_ignored[0].item() == 0 and not all_ignored[1].any()


def test_extreme_logits_and_soft_targets():
    pred = torch.tensor([[-100.0, 100.0, -100.0, 100.0, 0.0, 3.0, -30.0]] * 3, device=DEVICE)
    soft = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.5, 0.2, 0.9]] * 3, device=DEVICE)
    coefficients = efl_coefficients(7)
    loss, stats, grad, _ = kernel_loss_and_grad(pred, soft, None, *coefficients, reduce=False)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert torch.isfinite(stats).all()
    check_against_reference(pred, soft, None, coefficients, False)


@pytest.mark.parametrize('target', ['index', 'dense'])
@pytest.mark.parametrize('reduce', [True, False], ids=['sum', 'none'])
def test_empty_input(target, reduce):
    pred, target_t, weight = make_case(0, 37, target)
    loss, stats, grad, _ = kernel_loss_and_grad(pred, target_t, weight, *efl_coefficients(37),
                                                reduce=reduce)
    assert torch.equal(stats, torch.zeros(2, 37, device=DEVICE))
    assert grad.shape == (0, 37)
    if reduce:
        assert loss.shape == () and loss.item() == 0
    else:
        assert loss.shape == (0, 37)


def test_deterministic():
    pred, target, weight = make_case(517, 80, 'soft', 'dense')
    coefficients = efl_coefficients(80)
    first = kernel_loss_and_grad(pred, target, weight, *coefficients, reduce=True)
    second = kernel_loss_and_grad(pred, target, weight, *coefficients, reduce=True)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_backward_kernel_built_in_the_forward():
    """A compile error of the backward surfaces in the forward (where the seam can
    still run the PyTorch implementation); no build without a gradient."""
    pred, labels, weight = make_case(NUM_ROWS, 37)
    launched, built = [], []
    with dispatch.intercept_launches(lambda kernel, *_: launched.append(kernel.fn.__name__),
                                     build=lambda kernel, *_: built.append(kernel.fn.__name__)):
        equalized_focal_loss(pred.clone().requires_grad_(), labels, weight,
                             *efl_coefficients(37), True)
        assert launched == ['_equalized_focal_forward_kernel']
        assert built == ['_equalized_focal_backward_kernel']
        equalized_focal_loss(pred, labels, weight, *efl_coefficients(37), True)
        assert len(launched) == 2 and len(built) == 1


def test_tile_shape():
    assert tile_shape(80) == (64, 16) and tile_shape(1203) == (16, 64)
    assert tile_shape(7) == (128, 8) and tile_shape(1) == (128, 8)
    for num_classes in range(1, 1300):
        rows, cols = tile_shape(num_classes)
        assert rows * cols == TILE and ROWS_PER_PROGRAM % rows == 0
        padded = -(-num_classes // cols) * cols
        if num_classes > 8:  # the least padding of the widths allowed
            assert padded == min(-(-num_classes // c) * c for c in TILE_COLS)
