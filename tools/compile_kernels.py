"""Compiles every Triton kernel specialisation the losses launch to cubin for
GPUs that are not present: proof that the kernels build, without a GPU.

The losses run their real code path (impl='triton') on small CPU tensors that
the dispatcher is told to treat as CUDA tensors; every launch is intercepted
(``ops.dispatch.intercept_launches``) and compiled ahead of time, with triton's
bundled ptxas, for each ``--arch`` through a stand-in driver that reports that
GPU (triton >= 3.0: a stand-in active driver; 2.3: a stand-in for its lazily made
driver; 2.1 and 2.2: the device and capability asked of torch.cuda), with a
Python launcher in place of the C one triton would build against libcuda.
Nothing is launched. Integer outputs of a compiled launch are zeroed so the code
after it (indexing by bin) runs on defined values.

    python tools/compile_kernels.py --arch 80 90 [--json out.json]

Prints one line per kernel and target, and exits 1 if any specialisation
failed to compile. With a triton the kernels do not support it says which
(the losses then run their PyTorch implementation) and exits 0. Run it with
TRITON_INTERPRET unset; `make compat` runs it for each triton release.
"""
import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

DTYPES = ('float32', 'float16', 'bfloat16')
SHAPES = ((1000, 80), (37, 7))  # aligned and unaligned sizes specialise differently
# The equalized focal forward's tile width follows C (equalized_focal_triton.tile_shape):
# SHAPES give widths 16 and 8; these C give the others, 32 (VOC's 20 classes), 64
# (LVIS's 1203) and 128, each compiled for every dtype in two layouts.
EFL_WIDTH_CLASSES = (20, 1203, 128)


def triton_release() -> tuple:
    import triton

    from mmdet_ghm.ops.dispatch import parse_version
    return parse_version(triton.__version__)


class StandInDriver:
    """Answers what triton's (>= 3.0) JIT asks the active driver before it compiles."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget
        self.arch = arch
        self.target = GPUTarget('cuda', arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return self.arch  # one kernel cache per target

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        import torch
        return torch.device('cpu')

    def get_device_interface(self):
        import torch
        return torch.cuda

    def is_active(self):
        return True


class StandInDriver23:
    """What triton 2.3's JIT and compiler ask their (lazily made) driver."""
    binary_ext = 'cubin'

    def __init__(self, arch: int):
        self.arch = arch

    def get_current_device(self):
        return self.arch  # one kernel cache per target

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return ('cuda', self.arch)


def write_launcher_stub(directory: str) -> str:
    """A Python launcher in place of the C one triton builds against libcuda
    (absent here); compiling never calls it."""
    path = os.path.join(directory, 'launcher_stub.py')
    with open(path, 'w') as f:
        f.write('def launch(*args, **kwargs):\n'
                '    raise RuntimeError("compiled ahead of time for an absent GPU")\n')
    return path


def stand_in_gpu(arch: int, stub: str) -> dict:
    """Makes the installed triton compile for sm_``arch`` without a GPU; returns
    the extra keyword arguments its ``JITFunction.run`` needs for that."""
    release = triton_release()
    if release >= (3, 0):
        from triton.runtime.driver import driver
        driver.set_active(StandInDriver(arch))
        return {}
    if release >= (2, 3):
        from triton.compiler.backends.cuda import CUDABackend
        from triton.runtime.driver import driver
        CUDABackend.make_launcher_stub = lambda self, src, metadata: stub
        driver._obj = StandInDriver23(arch)
        return {}
    # triton 2.1 and 2.2: device and capability come from torch.cuda
    from triton.compiler import compiler
    compiler.make_stub = lambda *args, **kwargs: stub
    compiler.get_current_device = lambda: arch
    compiler.get_device_capability = lambda device: divmod(arch, 10)
    return dict(device=arch, device_type='cuda')


def training_call(loss):
    """``loss`` in training mode, declared synced (what SyncStatisticsHook
    declares), so its training calls run: the path a training step takes."""
    from mmdet_ghm.losses import attach_sync
    attach_sync(loss)
    return loss.train()


def loss_cases():
    """(description, loss module, pred, target, weight, reduction) of every
    argument layout the losses accept."""
    import torch

    from mmdet_ghm.losses import (ClassBalancedFocalLoss, EqualizedFocalLoss, GHMCLoss,
                                  GHMRLoss, SigmoidFocalLoss)

    for dtype_name, (n, c) in itertools.product(DTYPES, SHAPES):
        dtype = getattr(torch, dtype_name)
        pred = torch.randn(n, c).to(dtype)
        labels = torch.randint(0, c + 1, (n, ))
        one_hot = (labels[:, None] == torch.arange(c)).float()
        targets = {'index': labels, 'dense': one_hot}
        weights = {'no': None, 'row': torch.ones(n), 'dense': torch.ones(n, c)}
        losses = {
            'GHMCLoss': lambda: GHMCLoss(impl='triton'),
            'SigmoidFocalLoss': lambda: SigmoidFocalLoss(impl='triton'),
            'SigmoidFocalLoss(alpha=None)':
            lambda: SigmoidFocalLoss(alpha=None, impl='triton'),
            'ClassBalancedFocalLoss':
            lambda: ClassBalancedFocalLoss(class_counts=[5] * c, impl='triton'),
            'EqualizedFocalLoss':
            lambda: training_call(EqualizedFocalLoss(num_classes=c, impl='triton')),
            'EqualizedFocalLoss(alpha=None)': lambda: training_call(
                EqualizedFocalLoss(num_classes=c, alpha=None, impl='triton')),
        }
        for (name, build), (layout, target), (wmode, weight), reduction in itertools.product(
                losses.items(), targets.items(), weights.items(), ('mean', 'none')):
            yield (f'{name} {dtype_name} {n}x{c} {layout} target, {wmode} weight, '
                   f'{reduction}', build(), pred, target, weight, reduction)
        # quality targets (labels, scores), with the (N,) weights the heads pass
        for (name, build), reduction in itertools.product(losses.items(), ('mean', 'none')):
            yield (f'{name} {dtype_name} {n}x{c} quality target, row weight, {reduction}',
                   build(), pred, (labels, torch.rand(n)), torch.ones(n), reduction)
        deltas = torch.randn(n, 4).to(dtype)
        reg_weights = {'no': None, 'row': torch.ones(n), 'dense': torch.ones(n, 4)}
        for (wmode, weight), reduction in itertools.product(reg_weights.items(),
                                                            ('mean', 'none')):
            yield (f'GHMRLoss {dtype_name} {n}x4 {wmode} weight, {reduction}',
                   GHMRLoss(impl='triton'), deltas, torch.randn(n, 4).to(dtype), weight,
                   reduction)
    for dtype_name, c, alpha in itertools.product(DTYPES, EFL_WIDTH_CLASSES, (0.25, None)):
        n = 37
        pred = torch.randn(n, c).to(getattr(torch, dtype_name))
        labels = torch.randint(0, c + 1, (n, ))
        one_hot = (labels[:, None] == torch.arange(c)).float()
        for layout, target, wmode, weight, reduction in (
                ('index', labels, 'row', torch.ones(n), 'mean'),
                ('dense', one_hot, 'dense', torch.ones(n, c), 'none')):
            yield (f'EqualizedFocalLoss(alpha={alpha}) {dtype_name} {n}x{c} {layout} target, '
                   f'{wmode} weight, {reduction}',
                   training_call(EqualizedFocalLoss(num_classes=c, alpha=alpha,
                                                    impl='triton')),
                   pred, target, weight, reduction)


def compile_for(arch: int):
    """Runs every case, compiling each launch for sm_``arch``; returns
    {kernel: [specialisation, ...]}, the failing cases and the seconds it took."""
    import torch

    from mmdet_ghm.losses import ghm_r
    from mmdet_ghm.ops import dispatch

    start = time.perf_counter()
    compiled = defaultdict(set)
    failures = []
    # present the CPU tensors as CUDA, and take GHM-R's CUDA path (all elements,
    # not the rows it picks on the CPU)
    dispatch.is_gpu_tensor = lambda tensor: True
    ghm_r.selects_rows = lambda pred: False

    def compile_launch(kernel, grid, args, kwargs):
        name = kernel.fn.__name__
        binary = kernel.run(*args, grid=grid, warmup=True, **gpu, **kwargs)
        if not binary.asm.get('cubin') or f'.target sm_{arch}' not in binary.asm['ptx']:
            raise RuntimeError(f'{name}: no sm_{arch} cubin produced')
        compiled[name].add(' '.join(
            [str(a.dtype) if isinstance(a, torch.Tensor) else type(a).__name__
             for a in args] + [f'{k}={v}' for k, v in sorted(kwargs.items())]))
        for arg in args:  # defined values for the code after the launch
            if isinstance(arg, torch.Tensor) and not arg.is_floating_point():
                arg.zero_()

    with tempfile.TemporaryDirectory() as stub_dir, \
            dispatch.intercept_launches(compile_launch, build=compile_launch):
        gpu = stand_in_gpu(arch, write_launcher_stub(stub_dir))
        for case, loss, pred, target, weight, reduction in loss_cases():
            pred = pred.clone().requires_grad_()
            try:
                out = loss(pred, target, weight, reduction_override=reduction)
                out.backward(torch.ones_like(out))
            except Exception as error:  # report every failing case
                failures.append((arch, case, f'{type(error).__name__}: {error}'))
                if os.environ.get('COMPILE_KERNELS_TRACEBACK'):
                    traceback.print_exc()
    return ({name: sorted(specs) for name, specs in compiled.items()}, failures,
            round(time.perf_counter() - start, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', type=int, nargs='+', default=[80, 90],
                        help='CUDA compute capabilities to compile for (80 = A100, '
                        '90 = H100)')
    parser.add_argument('--json', help='also write the result to this file')
    args = parser.parse_args(argv)
    if os.environ.get('TRITON_INTERPRET') == '1':
        sys.exit('compile_kernels.py compiles for GPUs; unset TRITON_INTERPRET.')

    import triton

    from mmdet_ghm import ops

    result = dict(triton=triton.__version__, archs=args.arch)
    reason = ops.kernel_support()
    start = time.perf_counter()
    if reason is not None:
        result.update(status='torch', reason=reason)
        print(f'triton {triton.__version__}: the losses run their PyTorch implementation '
              f'({reason}).')
    else:
        # one process per target: compiling is CPU bound
        with ProcessPoolExecutor(min(len(args.arch), os.cpu_count() or 1)) as pool:
            per_arch = dict(zip(args.arch, pool.map(compile_for, args.arch)))
        compiled = {arch: kernels for arch, (kernels, _, _) in per_arch.items()}
        failures = [f for _, arch_failures, _ in per_arch.values() for f in arch_failures]
        result.update(
            status='failed' if failures else 'compiled',
            kernels={f'sm_{arch}': {k: len(v) for k, v in sorted(per.items())}
                     for arch, per in compiled.items()},
            specialisations={f'sm_{arch}': per for arch, per in compiled.items()},
            failures=failures,
            seconds_per_target={f'sm_{arch}': seconds
                                for arch, (_, _, seconds) in per_arch.items()})
        for arch, per in compiled.items():
            for kernel, specs in sorted(per.items()):
                print(f'triton {triton.__version__} sm_{arch}: {kernel}: '
                      f'{len(specs)} specialisations compiled to cubin')
        for arch, case, error in failures:
            print(f'FAILED sm_{arch} {case}: {error}')
        for target, seconds in result['seconds_per_target'].items():
            print(f'triton {triton.__version__} {target}: {seconds} s')
    result['seconds'] = round(time.perf_counter() - start, 1)
    print(f"triton {triton.__version__}: {result['status']} in {result['seconds']} s")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 1 if result['status'] == 'failed' else 0


if __name__ == '__main__':
    sys.exit(main())
