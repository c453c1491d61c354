"""Checks the Triton kernels on your GPU in under a minute.

For every loss, ``impl='triton'`` against ``impl='torch'`` (the PyTorch implementation) on
the same COCO-sized batch (401,400 anchors x 80 classes): loss values,
gradients and, for GHM, the EMA histogram after three steps, both run under
``torch.cuda.set_sync_debug_mode('error')`` (any host-device sync raises).
Then forward + backward times against mmdet's GHMC / GHMR / FocalLoss and
plain BCE with logits, with the achieved memory bandwidth (the bytes the fused
kernels must move, see docs/kernels.md, over the time) and its share of the
device's peak. Prints one table; exits 1 on a mismatch or a sync.

    python tools/gpu_check.py            # on a machine with a CUDA GPU

Without a GPU it says so and exits 0.
"""
import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_losses import NUM_CLASSES, SIZES, fused_bytes, make_inputs  # noqa: E402

# Differences between the kernels and the PyTorch implementation come from summation order and
# from elements whose gradient norm lies within an ulp of a bin edge (a fast
# GPU sigmoid may bin them one way, torch the other). Relative L2 errors of a
# few hundred fp32 ulps allow both and catch any wrong weight or formula.
RTOL = 256 * torch.finfo(torch.float32).eps
STEPS = 3  # calls per impl, so the EMA sees more than one batch


def loss_cases(inp):
    """(name, group, builder(impl), pred, args, kwargs) of every loss."""
    from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                                  SigmoidFocalLoss)

    cls = (inp['labels'], inp['label_weights'])
    avg = dict(avg_factor=inp['num_pos'])
    counts = [1000 * (k + 1) for k in range(inp['logits'].shape[1])]
    return [
        ('GHMCLoss', 'GHM-C', lambda impl: GHMCLoss(impl=impl), inp['logits'], cls, {}),
        ('GHMRLoss', 'GHM-R', lambda impl: GHMRLoss(impl=impl), inp['deltas'],
         (inp['box_targets'], inp['box_weights']), {}),
        ('SigmoidFocalLoss', 'Focal', lambda impl: SigmoidFocalLoss(impl=impl),
         inp['logits'], cls, avg),
        ('ClassBalancedFocalLoss', 'CB focal',
         lambda impl: ClassBalancedFocalLoss(class_counts=counts, impl=impl),
         inp['logits'], cls, avg),
    ]


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
    """STEPS forward + backward calls; the last loss, gradient and EMA."""
    with sync_errors(device):
        for _ in range(STEPS):
            x = pred.detach().requires_grad_()
            value = loss(x, *args, **kwargs)
            value.backward()
    density = getattr(loss, 'density', None)
    return value.detach(), x.grad, None if density is None else density.acc_sum.clone()


def compare(inp, device):
    """Rows {loss, value, grad, ema (relative errors), error, ok} per loss."""
    rows = []
    for name, _, build, pred, args, kwargs in loss_cases(inp):
        row = dict(loss=name)
        try:
            results = {impl: run_steps(build(impl).to(device), pred, args, kwargs, device)
                       for impl in ('triton', 'torch')}
        except Exception as error:  # a sync under debug mode, a compile error
            row.update(ok=False, error=f'{type(error).__name__}: {error}'.splitlines()[0])
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


def cuda_time(fn, pred, args, kwargs, repeat=10):
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


def peak_bandwidth(device):
    """The device's peak memory bandwidth in bytes/s, or None if torch does not
    report the memory clock."""
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, 'memory_clock_rate', 0)
    bus_bits = getattr(props, 'memory_bus_width', 0)
    return 2 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def timings(inp, device):
    """Rows {loss, ms, ms of mmdet's loss and BCE, GB/s, share of peak}."""
    from mmdet.models.losses import GHMC, GHMR, FocalLoss

    mmdet = {'GHM-C': GHMC(bins=30, momentum=0.75), 'GHM-R': GHMR(mu=0.02, bins=10,
                                                                   momentum=0.7),
             'Focal': FocalLoss(use_sigmoid=True), 'CB focal': FocalLoss(use_sigmoid=True)}
    bce_ms = cuda_time(F.binary_cross_entropy_with_logits, inp['logits'],
                       (inp['one_hot'], ), {}) * 1e3
    peak = peak_bandwidth(device)
    rows = []
    for name, group, build, pred, args, kwargs in loss_cases(inp):
        seconds = cuda_time(build('triton').to(device), pred, args, kwargs)
        row = dict(loss=name, ms=seconds * 1e3, bce_ms=bce_ms,
                   mmdet_ms=cuda_time(mmdet[group].to(device), pred, args, kwargs) * 1e3)
        nbytes = fused_bytes(inp, group)
        if nbytes:
            row['GBps'] = nbytes / seconds / 1e9
            if peak:
                row['peak_share'] = nbytes / seconds / peak
        rows.append(row)
    return rows


def print_table(checks, times):
    by_loss = {row['loss']: row for row in times}
    print(f'{"loss":<24}{"value":>10}{"grad":>10}{"EMA":>10}  {"ok":<4}{"ms":>8}'
          f'{"mmdet ms":>10}{"BCE ms":>8}{"GB/s":>7}{"peak":>6}')
    fmt = lambda row, k, f: format(row[k], f) if k in row else '-'  # noqa: E731
    for check in checks:
        t = by_loss.get(check['loss'], {})
        print(f'{check["loss"]:<24}{fmt(check, "value", ".1e"):>10}'
              f'{fmt(check, "grad", ".1e"):>10}{fmt(check, "ema", ".1e"):>10}  '
              f'{"yes" if check["ok"] else "NO":<4}{fmt(t, "ms", ".2f"):>8}'
              f'{fmt(t, "mmdet_ms", ".2f"):>10}{fmt(t, "bce_ms", ".2f"):>8}'
              f'{fmt(t, "GBps", ".0f"):>7}{fmt(t, "peak_share", ".0%"):>6}')
        if 'error' in check:
            print(f'    {check["error"]}')
    print(f'value / grad / EMA: relative L2 error of impl=triton against impl=torch '
          f'(at most {RTOL:.1e}).')


def check(device, anchors) -> int:
    """Compares the impls (and on CUDA times them); prints the table; returns
    the exit status, 1 on a mismatch or a sync."""
    start = time.perf_counter()
    inp = make_inputs(anchors, device)
    checks = compare(inp, device)
    times = timings(inp, device) if device.type == 'cuda' else []
    print_table(checks, times)
    print(f'done in {time.perf_counter() - start:.0f} s')
    return 0 if all(row['ok'] for row in checks) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--anchors', type=int, default=SIZES['whole_batch'])
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('gpu_check: no CUDA GPU here, nothing to check (the losses run their '
              'PyTorch implementation on the CPU).')
        return 0
    import triton

    from mmdet_ghm import ops
    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}, triton '
          f'{triton.__version__}; {args.anchors} anchors x {NUM_CLASSES} classes')
    reason = ops.kernel_support()
    if reason is not None:
        print(f'gpu_check: the kernels do not run here ({reason}); the losses use '
              'their PyTorch implementation.')
        return 0
    return check(torch.device('cuda'), args.anchors)


if __name__ == '__main__':
    sys.exit(main())
