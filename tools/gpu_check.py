"""Checks the Triton kernels on a CUDA GPU in about a minute, with only torch and triton.

For every loss, ``impl='triton'`` against ``impl='torch'`` (the PyTorch implementation) on
the same COCO-sized batch (401,400 anchors x 80 classes): loss values,
gradients and, for GHM, the EMA histogram after three steps, both run under
``torch.cuda.set_sync_debug_mode('error')`` (any host-device sync raises).
Then forward + backward times against plain BCE with logits and, where mmdet
imports, mmdet's GHMC / GHMR / FocalLoss, with the achieved memory bandwidth
(the bytes the fused kernels must move, see docs/kernels.md, over the time) and
its share of the device's peak. Prints one table; exits 1 on a mismatch, a sync
or a loss of ours that fails to run, 0 otherwise.

    python tools/gpu_check.py            # from the repo root; no install needed

It needs torch and triton only: without mmdet (as on a bare GPU machine) the
losses load without mmdet's registry and the mmdet column is skipped. Without a
GPU it says so and exits 0.
"""
import argparse
import contextlib
import functools
import importlib
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent  # this working tree's mmdet_ghm, installed or not
for _path in (str(ROOT), str(TOOLS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
from benchmark_losses import NUM_CLASSES, SIZES, fused_bytes, make_inputs  # noqa: E402

# Differences between the kernels and the PyTorch implementation come from summation order and
# from elements whose gradient norm lies within an ulp of a bin edge (a fast
# GPU sigmoid may bin them one way, torch the other). Relative L2 errors of a
# few hundred fp32 ulps allow both and catch any wrong weight or formula.
RTOL = 256 * torch.finfo(torch.float32).eps
STEPS = 3  # calls per impl, so the EMA sees more than one batch
REPEAT = 10  # timed forward + backward calls per loss, after two warm-up calls


@functools.lru_cache(maxsize=None)
def load_losses():
    """``(mmdet_ghm.losses, None)`` where mmdet imports, else ``(losses, why not)``.

    Where mmdet imports this is the package's normal import, which registers
    every module in mmdet's ``MODELS``. A machine with only torch and triton (the
    lent GPU machine) has no mmdet, yet ``mmdet_ghm/__init__`` imports the heads
    and hooks and each loss module imports ``mmdet.registry`` for its decorator.
    There, in this process only, ``mmdet_ghm`` becomes a bare package (its
    ``__init__`` is not run) and a stand-in ``mmdet.registry.MODELS`` whose
    ``register_module()`` returns the class unchanged, so the losses, ``ops``
    and ``functional`` import as they are. The package itself is unchanged."""
    try:
        import mmdet  # noqa: F401
    except ModuleNotFoundError as error:
        missing = str(error)
        print(f'gpu_check: mmdet does not import here ({missing}): the losses load '
              "without mmdet's registry and the mmdet columns are skipped.")
        registry = types.ModuleType('mmdet.registry', 'stand-in of tools/gpu_check.py')
        registry.MODELS = types.SimpleNamespace(
            register_module=lambda *args, **kwargs: (lambda cls: cls))
        mmdet = types.ModuleType('mmdet', 'stand-in of tools/gpu_check.py')
        mmdet.__path__, mmdet.registry = [], registry
        package = types.ModuleType('mmdet_ghm', 'bare package of tools/gpu_check.py')
        package.__path__ = [str(ROOT / 'mmdet_ghm')]
        sys.modules.update({'mmdet': mmdet, 'mmdet.registry': registry})
        sys.modules.setdefault('mmdet_ghm', package)
    else:
        missing = None
    return importlib.import_module('mmdet_ghm.losses'), missing


def loss_cases(inp):
    """(name, group, builder(impl), pred, args, kwargs) of every loss."""
    losses, _ = load_losses()
    cls = (inp['labels'], inp['label_weights'])
    avg = dict(avg_factor=inp['num_pos'])
    counts = [1000 * (k + 1) for k in range(inp['logits'].shape[1])]
    return [
        ('GHMCLoss', 'GHM-C', lambda impl: losses.GHMCLoss(impl=impl), inp['logits'], cls,
         {}),
        ('GHMRLoss', 'GHM-R', lambda impl: losses.GHMRLoss(impl=impl), inp['deltas'],
         (inp['box_targets'], inp['box_weights']), {}),
        ('SigmoidFocalLoss', 'Focal', lambda impl: losses.SigmoidFocalLoss(impl=impl),
         inp['logits'], cls, avg),
        ('ClassBalancedFocalLoss', 'CB focal',
         lambda impl: losses.ClassBalancedFocalLoss(class_counts=counts, impl=impl),
         inp['logits'], cls, avg),
        ('EqualizedFocalLoss', 'EFL', functools.partial(equalized_focal, losses,
                                                        inp['logits'].shape[1]),
         inp['logits'], cls, avg),
    ]


def equalized_focal(losses, num_classes, impl):
    """EqualizedFocalLoss in training with a gradient ratio from 0 to 1 over the
    classes (focusing factors 10 to 2, as after some training); its gradient sums
    pile up, unfolded, over the steps."""
    loss = losses.EqualizedFocalLoss(num_classes=num_classes, impl=impl)
    losses.attach_sync(loss)
    loss.statistics.pos_neg.copy_(torch.linspace(0, 1, num_classes))
    return loss


def mmdet_loss(group):
    """mmdet's loss of a group, as configured in its GHM / RetinaNet configs."""
    from mmdet.models.losses import GHMC, GHMR, FocalLoss
    if group == 'GHM-C':
        return GHMC(bins=30, momentum=0.75)
    if group == 'GHM-R':
        return GHMR(mu=0.02, bins=10, momentum=0.7)
    return FocalLoss(use_sigmoid=True)


def first_line(error):
    return f'{type(error).__name__}: {error}'.splitlines()[0]


def relative_error(actual, expected):
    """``|actual - expected| / |expected|`` in the L2 norm (0 for two zeros)."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() / expected.norm().clamp(min=1e-300)).item()


@contextlib.contextmanager
def sync_errors(device):
    """Makes any host-device synchronisation raise (CUDA only)."""
    if device.type != 'cuda':
        yield
        return
    torch.cuda.set_sync_debug_mode('error')
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode('default')


def run_steps(loss, pred, args, kwargs, device):
    """STEPS forward + backward calls; the last loss, gradient and state: GHM's
    EMA, EFL's gradient sums of the steps."""
    with sync_errors(device):
        for _ in range(STEPS):
            x = pred.detach().requires_grad_()
            value = loss(x, *args, **kwargs)
            value.backward()
    if hasattr(loss, 'density'):
        return value.detach(), x.grad, loss.density.acc_sum.clone()
    if hasattr(loss, 'statistics'):
        return value.detach(), x.grad, loss.statistics.pending.clone()
    return value.detach(), x.grad, None


def compare(inp, device):
    """Rows {loss, value, grad, ema (relative errors), error, ok} per loss."""
    rows = []
    for name, _, build, pred, args, kwargs in loss_cases(inp):
        row = dict(loss=name)
        try:
            results = {impl: run_steps(build(impl).to(device), pred, args, kwargs, device)
                       for impl in ('triton', 'torch')}
        except Exception as error:  # a sync under debug mode, a compile error
            row.update(ok=False, error=first_line(error))
            rows.append(row)
            continue
        (value, grad, ema), (ref_value, ref_grad, ref_ema) = results['triton'], results['torch']
        row['value'] = relative_error(value, ref_value)
        row['grad'] = relative_error(grad, ref_grad)
        if ema is not None:
            row['ema'] = relative_error(ema, ref_ema)
        row['ok'] = all(row[k] <= RTOL for k in ('value', 'grad', 'ema') if k in row)
        rows.append(row)
    return rows


def cuda_time(fn, pred, args, kwargs, repeat=REPEAT):
    """Median forward + backward time in seconds, after two warm-up calls."""
    times = []
    for i in range(repeat + 2):
        x = pred.detach().requires_grad_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x, *args, **kwargs).backward()
        end.record()
        torch.cuda.synchronize()
        if i >= 2:
            times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def copy_bandwidth(device, nbytes=1 << 30, repeat=5):
    """Bytes/s of a device-to-device copy of ``nbytes`` (read + write counted)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = []
    for i in range(repeat + 1):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        if i:
            times.append(start.elapsed_time(end) / 1e3)
    return 2 * nbytes / statistics.median(times)


def peak_bandwidth(device):
    """The device's peak memory bandwidth in bytes/s, or None if torch does not
    report the memory clock (attributes differ between torch and CUDA releases)."""
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, 'memory_clock_rate', 0) or 0
    bus_bits = getattr(props, 'memory_bus_width', 0) or 0
    return 2 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def bandwidth_reference(device):
    """(bytes/s the 'peak' column divides by, a line saying what it is)."""
    try:
        peak = peak_bandwidth(device)
    except Exception as error:
        peak, why = None, first_line(error)
    else:
        why = "torch's device properties give no memory clock"
    try:
        copy = copy_bandwidth(device)
        copied = f'a 1 GiB device copy reaches {copy / 1e9:.0f} GB/s'
    except Exception as error:
        copy, copied = None, f'the device copy failed ({first_line(error)})'
    if peak:
        return peak, (f'peak: share of the peak {peak / 1e9:.0f} GB/s (2 x memory clock x '
                      f'bus width, from the device properties); {copied}.')
    if copy:
        return copy, f'peak: share of the device copy, {copied} ({why}).'
    return None, f'peak: no reference ({why}; {copied}).'


def timings(inp, device, with_mmdet):
    """({loss: {ms, bce_ms, mmdet_ms, GBps, peak_share, errors}}, a line on the
    'peak' column). A timing that raises leaves its column out and its first line
    in ``errors``, and the other timings go on."""
    def timed(row, key, fn, pred, args, kwargs):
        try:
            row[key] = cuda_time(fn(), pred, args, kwargs) * 1e3
        except Exception as error:
            row.setdefault('errors', []).append(f'{key}: {first_line(error)}')

    bce = {}
    timed(bce, 'bce_ms', lambda: F.binary_cross_entropy_with_logits, inp['logits'],
          (inp['one_hot'], ), {})
    peak, peak_line = bandwidth_reference(device)
    rows = {}
    for name, group, build, pred, args, kwargs in loss_cases(inp):
        row = rows[name] = dict(bce)
        row['errors'] = list(bce.get('errors', []))
        timed(row, 'ms', lambda: build('triton').to(device), pred, args, kwargs)
        if with_mmdet:
            timed(row, 'mmdet_ms', lambda: mmdet_loss(group).to(device), pred, args, kwargs)
        nbytes = fused_bytes(inp, group)
        if 'ms' in row:
            if 'bce_ms' in row:
                row['x_bce'] = row['ms'] / row['bce_ms']
            if nbytes:
                row['GBps'] = nbytes / row['ms'] * 1e3 / 1e9
                if peak:
                    row['peak_share'] = nbytes / row['ms'] * 1e3 / peak
    return rows, peak_line


def print_table(checks, times, notes=()):
    # Cells are joined by a space so that a wide number (a slow CPU run in the
    # tests, a large size here) never runs into its neighbour.
    columns = [('ms', 'ms', '.2f', 8), ('x BCE', 'x_bce', '.2f', 6),
               ('BCE ms', 'bce_ms', '.2f', 7), ('mmdet ms', 'mmdet_ms', '.2f', 9),
               ('GB/s', 'GBps', '.0f', 6), ('peak', 'peak_share', '.0%', 5)]
    fmt = lambda row, k, f: format(row[k], f) if k in row else '-'  # noqa: E731
    print(' '.join([f'{"loss":<24}', f'{"value":>8}', f'{"grad":>8}', f'{"EMA":>8}',
                    f'{"ok":<3}'] + [f'{head:>{width}}' for head, _, _, width in columns]))
    for check in checks:
        t = times.get(check['loss'], {})
        print(' '.join([f'{check["loss"]:<24}'] + [
            f'{fmt(check, key, ".1e"):>8}' for key in ('value', 'grad', 'ema')] + [
            f'{"yes" if check["ok"] else "NO":<3}'] + [
            f'{fmt(t, key, spec):>{width}}' for _, key, spec, width in columns]))
        for error in [check['error']] if 'error' in check else []:
            print(f'    {error}')
        for error in t.get('errors', []):
            print(f'    timing {error}')
    print('value / grad / EMA (GHM: the EMA; EFL: its gradient sums): relative L2 error '
          f'of impl=triton against impl=torch after {STEPS} steps (on CUDA under sync '
          f'debug mode), at most {RTOL:.1e}.')
    for note in notes:
        print(note)


def check(device, anchors) -> int:
    """Compares the impls (and on CUDA times them); prints the table; returns
    the exit status, 1 on a mismatch, a sync or a loss of ours that fails to run."""
    start = time.perf_counter()
    _, no_mmdet = load_losses()
    inp = make_inputs(anchors, device)
    checks = compare(inp, device)
    times, notes = {}, ['(no timings: not on a CUDA GPU)']
    if device.type == 'cuda':
        times, peak_line = timings(inp, device, with_mmdet=no_mmdet is None)
        notes = [f'ms: median forward + backward of impl=triton over {REPEAT} calls; '
                 'x BCE: over BCE ms, binary_cross_entropy_with_logits on the same logits '
                 '(one-hot targets); GB/s: the bytes the fused kernels must move '
                 '(docs/kernels.md; GHM-R has none) over ms.', peak_line,
                 "mmdet ms: mmdet's GHMC / GHMR / FocalLoss (CB focal: FocalLoss)."
                 if no_mmdet is None else
                 f"mmdet ms: '-', mmdet does not import here ({no_mmdet})."]
    print_table(checks, times, notes)
    print(f'done in {time.perf_counter() - start:.0f} s')
    return 1 if failures(checks, times) else 0


def failures(checks, times):
    """The losses that failed: a mismatch or an error in the comparison, or no
    time of ours (mmdet's or BCE's timings failing fail nothing)."""
    return ([row['loss'] for row in checks if not row['ok']]
            + [name for name, row in times.items() if 'ms' not in row])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--anchors', type=int, default=SIZES['whole_batch'])
    args = parser.parse_args(argv)
    load_losses()  # here too without a GPU: the import path runs wherever the tool does
    from mmdet_ghm import ops
    if not torch.cuda.is_available():
        print('gpu_check: no CUDA GPU here, nothing to check (the losses run their '
              'PyTorch implementation on the CPU).')
        return 0
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = 'absent'
    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}, triton '
          f'{triton_version}; {args.anchors} anchors x {NUM_CLASSES} classes')
    reason = ops.kernel_support()
    if reason is not None:
        print(f'gpu_check: the kernels do not run here ({reason}); the losses use '
              'their PyTorch implementation.')
        return 0
    return check(torch.device('cuda'), args.anchors)


if __name__ == '__main__':
    sys.exit(main())
