"""Forward + backward time of our losses against mmdet's and the BCE floor.

Every loss runs in this one process on the same inputs: RetinaNet-like logits
(mostly easy negatives), index labels with 0.5% positives and 1% ignored
anchors, as mmdet's RetinaHead passes them. Prints the median times and the
ratios ours / mmdet and ours / BCE; ``--json PATH`` also writes them.

    python tools/benchmark_losses.py                 # CPU here: a few minutes
    python tools/benchmark_losses.py --device cuda   # adds achieved bandwidth
"""
import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from mmdet.models.losses import GHMC, GHMR, FocalLoss

from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)

NUM_CLASSES = 80
# anchors of a 2-image 800x1333 batch: 9 anchors at strides 8..128
SIZES = {
    'small': 2_000,
    'fpn_level_p4': 2 * 50 * 84 * 9,
    'whole_batch': 2 * 9 * (100 * 167 + 50 * 84 + 25 * 42 + 13 * 21 + 7 * 11),
}


def make_inputs(num_anchors, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_anchors, NUM_CLASSES, generator=gen) * 2 - 4
    labels = torch.full((num_anchors, ), NUM_CLASSES, dtype=torch.long)
    pos = torch.rand(num_anchors, generator=gen) < 0.005
    labels[pos] = torch.randint(0, NUM_CLASSES, (int(pos.sum()), ), generator=gen)
    label_weights = (torch.rand(num_anchors, generator=gen) > 0.01).float()
    one_hot = (labels[:, None] == torch.arange(NUM_CLASSES)).float()
    deltas = torch.randn(num_anchors, 4, generator=gen) * 0.3
    box_targets = torch.randn(num_anchors, 4, generator=gen) * 0.3
    box_weights = pos.float()[:, None].expand(-1, 4).contiguous()
    tensors = dict(logits=logits, labels=labels, label_weights=label_weights,
                   one_hot=one_hot, deltas=deltas, box_targets=box_targets,
                   box_weights=box_weights, num_pos=pos.sum().clamp(min=1).float())
    return {k: v.to(device) for k, v in tensors.items()}


def median_time(fn, pred, args, kwargs, repeat, device):
    def step():
        x = pred.detach().requires_grad_()
        fn(x, *args, **kwargs).backward()

    step()  # warm-up (Triton compiles here)
    times = []
    for _ in range(repeat):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cases(inp, impl):
    """(group, name, role, loss fn, pred, args, kwargs); role: ours | mmdet | floor."""
    cls = (inp['logits'], (inp['labels'], inp['label_weights']))
    avg = dict(avg_factor=inp['num_pos'])
    counts = [1000 * (k + 1) for k in range(NUM_CLASSES)]
    bce = (lambda x, y: F.binary_cross_entropy_with_logits(x, y))
    return [
        ('GHM-C', 'GHMCLoss (ours)', 'ours', GHMCLoss(impl=impl), *cls, {}),
        ('GHM-C', 'mmdet GHMC', 'mmdet', GHMC(bins=30, momentum=0.75), *cls, {}),
        ('GHM-C', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('GHM-R', 'GHMRLoss (ours)', 'ours', GHMRLoss(impl=impl), inp['deltas'],
         (inp['box_targets'], inp['box_weights']), {}),
        ('GHM-R', 'mmdet GHMR', 'mmdet', GHMR(mu=0.02, bins=10, momentum=0.7),
         inp['deltas'], (inp['box_targets'], inp['box_weights']), {}),
        ('Focal', 'SigmoidFocalLoss (ours)', 'ours', SigmoidFocalLoss(impl=impl), *cls,
         avg),
        ('Focal', 'mmdet FocalLoss', 'mmdet', FocalLoss(use_sigmoid=True), *cls, avg),
        ('Focal', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('CB focal', 'ClassBalancedFocalLoss (ours)', 'ours',
         ClassBalancedFocalLoss(class_counts=counts, impl=impl), *cls, avg),
        ('CB focal', 'mmdet FocalLoss', 'mmdet', FocalLoss(use_sigmoid=True), *cls, avg),
        ('CB focal', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
    ]


def fused_bytes(inp, group):
    """Bytes the fused Triton path moves for one forward + backward: logits read
    three times (histogram, loss, gradient), labels/weights per pass, gradient
    written once. Only for the classification kernels."""
    if group not in ('GHM-C', 'Focal', 'CB focal'):
        return None
    logits = inp['logits']
    passes = 3 if group == 'GHM-C' else 2
    per_pass = logits.numel() * logits.element_size() + inp['labels'].numel() * 12
    return passes * per_pass + logits.numel() * logits.element_size()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--impl', default='auto', choices=['auto', 'triton', 'torch'])
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed runs per case (mmdet GHMC at whole_batch: 3)')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    device = torch.device(args.device)

    results = []
    for size in args.sizes:
        inp = make_inputs(SIZES[size], device)
        times = {}
        for group, name, role, fn, pred, fargs, kwargs in cases(inp, args.impl):
            if hasattr(fn, 'to'):
                fn.to(device)
            repeat = 3 if (role == 'mmdet' and size == 'whole_batch') else args.repeat
            seconds = median_time(fn, pred, fargs, kwargs, repeat, device)
            times[(group, role)] = seconds
            row = dict(size=size, anchors=SIZES[size], group=group, name=name, role=role,
                       median_ms=seconds * 1e3)
            nbytes = fused_bytes(inp, group) if role == 'ours' else None
            if device.type == 'cuda' and nbytes:
                row['achieved_GBps'] = nbytes / seconds / 1e9
            results.append(row)
        for row in results:
            if row['size'] == size and row['role'] == 'ours':
                for base in ('mmdet', 'floor'):
                    if (row['group'], base) in times:
                        row[f'ours/{base}'] = row['median_ms'] / 1e3 / times[(row['group'], base)]
        print_table(size, [r for r in results if r['size'] == size])

    if args.json:
        meta = dict(device=str(device), impl=args.impl, torch=torch.__version__,
                    machine=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads(),
                    gpu=torch.cuda.get_device_name() if device.type == 'cuda' else None)
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)


def print_table(size, rows):
    print(f'\n{size}: {rows[0]["anchors"]} anchors x {NUM_CLASSES} classes')
    print(f'{"loss":<32}{"median ms":>11}{"ours/mmdet":>12}{"ours/BCE":>10}{"GB/s":>8}')
    for r in rows:
        ratio = lambda k: f'{r[k]:.3f}' if k in r else ''  # noqa: E731
        bw = f'{r["achieved_GBps"]:.0f}' if 'achieved_GBps' in r else ''
        print(f'{r["name"]:<32}{r["median_ms"]:>11.1f}{ratio("ours/mmdet"):>12}'
              f'{ratio("ours/floor"):>10}{bw:>8}')


if __name__ == '__main__':
    main()
