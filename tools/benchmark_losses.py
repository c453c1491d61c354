"""Forward + backward time of our losses against mmdet's and the plain floors.

Every loss runs in this one process on the same inputs: RetinaNet-like logits
(mostly easy negatives), index labels with 0.5% positives and 1% ignored
anchors, as mmdet's RetinaHead passes them. Prints the median times and the
ratios ours / mmdet, ours / floor (``binary_cross_entropy_with_logits`` for
the classification losses, ``smooth_l1_loss`` for GHM-R: one fused op on all
elements, no weights) and ours / plain (mmdet's ``CrossEntropyLoss`` with
``use_sigmoid=True`` and ``SmoothL1Loss``, called with the same weights and
``avg_factor`` as a head calls them); ``--json PATH`` also writes them.

    python tools/benchmark_losses.py                 # CPU here: a few minutes
    python tools/benchmark_losses.py --device cuda   # adds achieved bandwidth
    python tools/benchmark_losses.py --anchors 250 1000 2000 4000  # other anchor counts
    python tools/benchmark_losses.py --e2e           # the head's loss step, a toy iteration

``--e2e`` times, in one process on the same inputs after a warm-up, (1) the
loss step of RetinaNet's head at COCO scale (``loss_by_feat``: anchors,
targets, both losses, forward and backward; 80 classes, 2 images of
800 x 1216, five FPN levels of random features) for ``GHMRetinaHead`` with our
GHM losses against mmdet's ``RetinaHead`` with mmdet's ``GHMC``/``GHMR``, and
(2) one whole training step of the toy GHM RetinaNet (8 images of 160 px)
against the same model with mmdet's head and losses.
"""
import argparse
import functools
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

# mmdet and our losses are imported where they are used (cases()): what
# tools/gpu_check.py takes from here needs torch only.
NUM_CLASSES = 80
# anchors of a 2-image 800x1333 batch: 9 anchors at strides 8..128
SIZES = {
    '2k': 2_000,
    '10k': 10_000,
    '30k': 30_000,
    'fpn_level_p4': 2 * 50 * 84 * 9,
    '100k': 100_000,
    '200k': 200_000,
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


def interleaved_medians(steps, repeat, device):
    """Median seconds of each ``steps[k]()`` after one warm-up call each (Triton
    compiles there). The timed runs go round robin over the steps, so a slow
    phase of a shared machine hits every case alike, not one of them."""
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    times = {key: [] for key in steps}
    for step in steps.values():
        step()
    for _ in range(repeat):
        for key, step in steps.items():
            if len(times[key]) >= repeat_of(key, repeat):
                continue
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def repeat_of(name, repeat):
    """mmdet's GHMC takes seconds per call at the larger sizes: 3 runs."""
    return min(repeat, 3) if name == 'mmdet GHMC' else repeat


def training_step(fn, pred, args, kwargs):
    def step():
        x = pred.detach().requires_grad_()
        fn(x, *args, **kwargs).backward()
    return step


def cases(inp, impl):
    """(group, name, role, loss fn, pred, args, kwargs); role: ours | mmdet |
    floor | plain. The floors are the plain PyTorch losses on the same logits
    (BCE with one-hot targets) or deltas (smooth L1, all elements, no weights);
    the plain losses are mmdet's sigmoid cross-entropy and smooth L1, with the
    weights and ``avg_factor`` a head passes."""
    from mmdet.models.losses import (GHMC, GHMR, CrossEntropyLoss, FocalLoss,
                                     SmoothL1Loss)

    from mmdet_ghm.losses import (ClassBalancedFocalLoss, EqualizedFocalLoss, GHMCLoss,
                                  GHMRLoss, SigmoidFocalLoss, attach_sync)
    cls = (inp['logits'], (inp['labels'], inp['label_weights']))
    efl = EqualizedFocalLoss(num_classes=NUM_CLASSES, impl=impl)
    attach_sync(efl)  # its statistics pile up in `pending`, never folded here
    # a gradient ratio per class from 0 to 1, as after some training: gammas 10 to 2
    efl.statistics.pos_neg.copy_(torch.linspace(0, 1, NUM_CLASSES))
    avg = dict(avg_factor=inp['num_pos'])
    counts = [1000 * (k + 1) for k in range(NUM_CLASSES)]
    bce = (lambda x, y: F.binary_cross_entropy_with_logits(x, y))
    sigmoid_ce = CrossEntropyLoss(use_sigmoid=True)
    return [
        ('GHM-C', 'GHMCLoss (ours)', 'ours', GHMCLoss(impl=impl), *cls, {}),
        ('GHM-C', 'mmdet GHMC', 'mmdet', GHMC(bins=30, momentum=0.75), *cls, {}),
        ('GHM-C', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('GHM-C', 'mmdet CrossEntropyLoss', 'plain', sigmoid_ce, *cls, avg),
        ('GHM-R', 'GHMRLoss (ours)', 'ours', GHMRLoss(impl=impl), inp['deltas'],
         (inp['box_targets'], inp['box_weights']), {}),
        ('GHM-R', 'mmdet GHMR', 'mmdet', GHMR(mu=0.02, bins=10, momentum=0.7),
         inp['deltas'], (inp['box_targets'], inp['box_weights']), {}),
        ('GHM-R', 'smooth-L1 floor', 'floor', F.smooth_l1_loss, inp['deltas'],
         (inp['box_targets'], ), {}),
        ('GHM-R', 'mmdet SmoothL1Loss', 'plain', SmoothL1Loss(), inp['deltas'],
         (inp['box_targets'], inp['box_weights']), avg),
        ('Focal', 'SigmoidFocalLoss (ours)', 'ours', SigmoidFocalLoss(impl=impl), *cls,
         avg),
        ('Focal', 'mmdet FocalLoss', 'mmdet', FocalLoss(use_sigmoid=True), *cls, avg),
        ('Focal', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('Focal', 'mmdet CrossEntropyLoss', 'plain', sigmoid_ce, *cls, avg),
        ('CB focal', 'ClassBalancedFocalLoss (ours)', 'ours',
         ClassBalancedFocalLoss(class_counts=counts, impl=impl), *cls, avg),
        ('CB focal', 'mmdet FocalLoss', 'mmdet', FocalLoss(use_sigmoid=True), *cls, avg),
        ('CB focal', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('CB focal', 'mmdet CrossEntropyLoss', 'plain', sigmoid_ce, *cls, avg),
        ('EFL', 'EqualizedFocalLoss (ours)', 'ours', efl, *cls, avg),
        ('EFL', 'mmdet FocalLoss', 'mmdet', FocalLoss(use_sigmoid=True), *cls, avg),
        ('EFL', 'BCE floor', 'floor', bce, inp['logits'], (inp['one_hot'], ), {}),
        ('EFL', 'mmdet CrossEntropyLoss', 'plain', sigmoid_ce, *cls, avg),
    ]


def fused_bytes(inp, group):
    """Bytes the fused Triton path moves for one forward + backward: logits read
    three times (histogram, loss, gradient), labels/weights per pass, gradient
    written once. Only for the classification kernels."""
    if group not in ('GHM-C', 'Focal', 'CB focal', 'EFL'):
        return None
    logits = inp['logits']
    passes = 3 if group == 'GHM-C' else 2
    per_pass = logits.numel() * logits.element_size() + inp['labels'].numel() * 12
    return passes * per_pass + logits.numel() * logits.element_size()


def retinanet_config(path='retinanet/retinanet_r50_fpn_1x_coco.py'):
    import os.path as osp

    import mmdet
    from mmengine.config import Config
    return Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path))


E2E_HEADS = {
    'GHMRetinaHead + GHMCLoss/GHMRLoss (ours)': dict(
        type='GHMRetinaHead', loss_cls=dict(type='GHMCLoss', bins=30, momentum=0.75),
        loss_bbox=dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)),
    'RetinaHead + GHMC/GHMR (mmdet)': dict(
        type='RetinaHead', loss_cls=dict(type='GHMC', bins=30, momentum=0.75,
                                         use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='GHMR', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0)),
}


def random_gts(num_images, height, width, num_classes, per_image, seed=0):
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    gts = []
    for _ in range(num_images):
        xy = torch.rand(per_image, 2, generator=gen) * torch.tensor([width, height]) * 0.7
        wh = 8 + torch.rand(per_image, 2, generator=gen) * torch.tensor([width, height]) * 0.3
        gts.append(InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                labels=torch.randint(0, num_classes, (per_image, ),
                                                     generator=gen)))
    return gts


def e2e_head(repeat):
    """Seconds of the head's loss step, forward and backward, per head."""
    from mmdet.registry import MODELS
    cfg = retinanet_config()
    height, width, num_classes = 800, 1216, cfg.model.bbox_head.num_classes
    gen = torch.Generator().manual_seed(0)
    sizes = [(-(-height // s), -(-width // s)) for s in (8, 16, 32, 64, 128)]
    cls_scores = [torch.randn(2, 9 * num_classes, h, w, generator=gen) - 4 for h, w in sizes]
    bbox_preds = [torch.randn(2, 36, h, w, generator=gen) * 0.1 for h, w in sizes]
    gts = random_gts(2, height, width, num_classes, per_image=7)
    metas = [dict(img_shape=(height, width), pad_shape=(height, width),
                  batch_input_shape=(height, width))] * 2
    def loss_step(head):
        def step():
            maps = [[t.detach().requires_grad_() for t in ts]
                    for ts in (cls_scores, bbox_preds)]
            out = head.loss_by_feat(*maps, gts, metas)
            sum(sum(v) if isinstance(v, list) else v for v in out.values()).backward()
        return step

    steps = {}
    for name, losses in E2E_HEADS.items():
        head = MODELS.build(dict(cfg.model.bbox_head, **losses,
                                 train_cfg=cfg.model.train_cfg))
        head.train()
        steps[name] = loss_step(head)
    return interleaved_medians(steps, repeat, torch.device('cpu'))


def e2e_toy_iteration(repeat):
    """Seconds of one toy training step (data preprocessing, forward, backward,
    optimizer step), our GHM head and losses against mmdet's."""
    import os.path as osp

    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    size, batch = 160, 8
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
              for _ in range(batch)]
    samples = []
    for gt in random_gts(batch, size, size, 5, per_image=4):
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = gt
        samples.append(sample)
    data = dict(inputs=images, data_samples=samples)
    steps = {}
    for name, config in (('toy GHM RetinaNet (ours)', 'retinanet_r18_fpn_ghm-1500it_toy.py'),
                         ('toy GHM RetinaNet (mmdet)',
                          'retinanet_r18_fpn_mmdet-ghm-1500it_toy.py')):
        cfg = Config.fromfile(osp.join(root, 'configs', 'toy', config))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        steps[name] = functools.partial(model.train_step, data, optim_wrapper)
    return interleaved_medians(steps, repeat, torch.device('cpu'))


def e2e(repeat):
    rows = []
    for what, timed in (('head loss step, COCO scale', e2e_head),
                        ('toy training step', e2e_toy_iteration)):
        times = timed(repeat)
        ours, mmdet = times.values()
        print(f'\n{what}')
        for name, seconds in times.items():
            print(f'{name:<44}{seconds * 1e3:>10.0f} ms')
        print(f'{"ours / mmdet":<44}{ours / mmdet:>10.3f}')
        rows.append(dict(what=what, times_ms={k: v * 1e3 for k, v in times.items()},
                         ratio=ours / mmdet))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--impl', default='auto', choices=['auto', 'triton', 'torch'])
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--anchors', nargs='+', type=int, metavar='N',
                        help='time these anchor counts instead of --sizes')
    parser.add_argument('--repeat', type=int, default=7,
                        help='timed runs per case (mmdet GHMC: at most 3)')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--e2e', action='store_true',
                        help='time the head loss step and a toy training step instead')
    args = parser.parse_args()
    if args.anchors and min(args.anchors) < 1:
        parser.error(f'--anchors must be positive counts, got {args.anchors}')
    device = torch.device(args.device)
    if args.e2e:
        import mmdet_ghm  # noqa: F401  (registers GHMRetinaHead)
        rows = e2e(args.repeat)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(dict(meta=meta(device, args.impl), e2e=rows), f, indent=2)
        return

    sizes = ({str(n): n for n in args.anchors} if args.anchors
             else {size: SIZES[size] for size in args.sizes})
    results = []
    for size, num_anchors in sizes.items():
        inp = make_inputs(num_anchors, device)
        specs = {}
        for group, name, role, fn, pred, fargs, kwargs in cases(inp, args.impl):
            if hasattr(fn, 'to'):
                fn.to(device)
            specs[(group, role)] = (name, training_step(fn, pred, fargs, kwargs))
        # two passes: ours against the floors, then ours against mmdet's losses.
        # mmdet's losses allocate (up to gigabytes) at the larger sizes; timed
        # between them, the other losses fault their temporaries in afresh, so
        # the ratio to the floor is taken in a pass of ours and the floors alone.
        # A case of several groups (the BCE floor, mmdet's FocalLoss and
        # CrossEntropyLoss) is timed once, so every group is divided by the
        # same measurement.
        floors, mmdets = (interleaved_medians(
            {name: step for (_, role), (name, step) in specs.items() if role in roles},
            args.repeat, device) for roles in (('ours', 'floor'), ('ours', 'mmdet', 'plain')))
        times = {key: (mmdets if key[1] in ('mmdet', 'plain') else floors)[name]
                 for key, (name, _) in specs.items()}
        against_mmdet = {key: mmdets[name] for key, (name, _) in specs.items()
                         if key[1] == 'ours'}
        for key in specs:  # in the order of cases()
            (group, role), seconds = key, times[key]
            row = dict(size=size, anchors=num_anchors, group=group,
                       name=specs[(group, role)][0], role=role, median_ms=seconds * 1e3)
            nbytes = fused_bytes(inp, group) if role == 'ours' else None
            if device.type == 'cuda' and nbytes:
                row['achieved_GBps'] = nbytes / seconds / 1e9
            if role == 'ours':
                row['ours/floor'] = seconds / times[(group, 'floor')]
                row['ours/plain'] = against_mmdet[key] / times[(group, 'plain')]
                row['ours/mmdet'] = against_mmdet[key] / times[(group, 'mmdet')]
            if key == ('EFL', 'ours'):  # both timed in the pass against the floors
                row['ours/our focal'] = seconds / times[('Focal', 'ours')]
            results.append(row)
        print_table(size, [r for r in results if r['size'] == size])

    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(meta=meta(device, args.impl), results=results), f, indent=2)


def meta(device, impl):
    return dict(device=str(device), impl=impl, torch=torch.__version__,
                machine=platform.processor() or platform.machine(),
                threads=torch.get_num_threads(),
                gpu=torch.cuda.get_device_name() if device.type == 'cuda' else None)


def print_table(size, rows):
    print(f'\n{size}: {rows[0]["anchors"]} anchors x {NUM_CLASSES} classes')
    print(f'{"loss":<32}{"median ms":>11}{"ours/mmdet":>12}{"ours/floor":>11}'
          f'{"ours/plain":>11}{"GB/s":>8}')
    for r in rows:
        ratio = lambda k: f'{r[k]:.3f}' if k in r else ''  # noqa: E731
        bw = f'{r["achieved_GBps"]:.0f}' if 'achieved_GBps' in r else ''
        print(f'{r["name"]:<32}{r["median_ms"]:>11.1f}{ratio("ours/mmdet"):>12}'
              f'{ratio("ours/floor"):>11}{ratio("ours/plain"):>11}{bw:>8}')
    for r in rows:
        if 'ours/our focal' in r:
            print(f'{r["name"]} / SigmoidFocalLoss (ours): {r["ours/our focal"]:.3f}')


if __name__ == '__main__':
    main()
