"""Trains the toy variants with the same seed and iterations and tabulates them.

    python tools/compare_losses.py [--iters 1500] [--variants ghm focal ...]

For each variant runs tools/train.py on configs/toy/<variant>_retinanet_toy.py
into work_dirs/compare/<variant>, reads the final CocoMetric results, and writes
a Markdown table (bbox mAP, AP50, and AP of the two rarest classes) to stdout and
to work_dirs/compare/results.md (and results.json).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = ('ghm', 'ghm_level', 'focal', 'cb_focal', 'mmdet_ghm', 'mmdet_focal')
RAREST = ('ring', 'cross')  # the toy data's two rarest classes


def final_metrics(work_dir):
    """Last validation record of the run's scalars.json."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no scalars.json under {work_dir}: did training fail?')
    records = [json.loads(line) for line in open(logs[-1])]
    evaluated = [r for r in records if 'coco/bbox_mAP' in r]
    if not evaluated:
        raise RuntimeError(f'{logs[-1]} has no CocoMetric result')
    return evaluated[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=1500)
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'compare'))
    args = parser.parse_args()
    rows = []
    for variant in args.variants:
        config = osp.join(ROOT, 'configs', 'toy', f'{variant}_retinanet_toy.py')
        work_dir = osp.join(args.out_dir, variant)
        start = time.time()
        subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
                        '--work-dir', work_dir, '--cfg-options',
                        f'train_cfg.max_iters={args.iters}',
                        f'train_cfg.val_interval={args.iters}'], check=True)
        metrics = final_metrics(work_dir)
        rows.append(dict(variant=variant, minutes=(time.time() - start) / 60,
                         mAP=metrics['coco/bbox_mAP'], AP50=metrics['coco/bbox_mAP_50'],
                         **{f'AP_{c}': metrics[f'coco/{c}_precision'] for c in RAREST}))
    lines = [f'| variant | bbox mAP | AP50 | AP {RAREST[0]} (rarest) | AP {RAREST[1]} | '
             'train min |', '|---|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r["variant"]} | {r["mAP"]:.3f} | {r["AP50"]:.3f} | '
                     f'{r[f"AP_{RAREST[0]}"]:.3f} | {r[f"AP_{RAREST[1]}"]:.3f} | '
                     f'{r["minutes"]:.1f} |')
    table = '\n'.join(lines)
    print(f'\n{args.iters} iterations each, seed 0\n{table}')
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(dict(iters=args.iters, rows=rows), f, indent=2)


if __name__ == '__main__':
    main()
