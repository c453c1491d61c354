"""The first run: trains the toy GHM RetinaNet and puts its mAP next to the measured range.

    python tools/demo.py [--tag ghm_mu0.2] [--work-dir work_dirs/ghm_retinanet_toy]

Trains the toy GHM setting for small data (``ghm_mu0.2``:
configs/toy/retinanet_r18_fpn_ghm-1500it_toy.py with GHM-R's ``mu=0.2``), seed 0, exactly as
tools/compare_losses.py trained it (same iterations, options and threads per
run), evaluates it with CocoMetric, and prints the run's bbox mAP next to the mean and
spread over seeds that the toy study gives (docs/toy_results.json) and the
measured range (mean ± 3 standard deviations), and where the density plots are. ``--tag`` picks another measured row.
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from compare_losses import ROOT, machine, summarise, train_one  # noqa: E402

MEASURED = osp.join(ROOT, 'docs', 'toy_results.json')
DEMO_TAG = 'ghm_mu0.2'  # the setting for small data (docs/ghm_on_small_data.md)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tag', default=DEMO_TAG,
                        help='the row of docs/toy_results.json to reproduce')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'ghm_retinanet_toy'))
    args = parser.parse_args()
    with open(MEASURED) as f:
        results = json.load(f)
    if args.tag not in results:
        sys.exit(f'demo: no row {args.tag!r} in {MEASURED}; measured rows: '
                 + ', '.join(results))
    measured = results[args.tag]
    threads = measured['runs'][0].get('threads', 1)
    stale = osp.join(args.work_dir, 'run.json')
    if osp.exists(stale):  # the demo always trains
        os.remove(stale)
    run = train_one(measured['variant'], 0, measured['iters'], measured['options'],
                    args.work_dir, threads, echo=True)
    if run['diverged']:
        sys.exit(f'demo: training failed: {run.get("error")}')
    s = summarise(measured['runs'])['mAP']
    # the measured range: mean ± 3 standard deviations over the seeds, since
    # another CPU model moves a run by about the seed-to-seed spread
    low, high = s['mean'] - 3 * s['std'], s['mean'] + 3 * s['std']
    seeds = [r['seed'] for r in measured['runs']]
    print(f'\nThis run ({args.tag}, seed 0, {machine()}): bbox mAP {run["mAP"]:.3f}, AP50 '
          f'{run["AP50"]:.3f}, AP75 {run["AP75"]:.3f}, {run["minutes"]:.1f} min.')
    where = measured['runs'][0].get('machine', 'the project machine')
    if low <= run['mAP'] <= high:
        verdict = 'this run is within it.'
    elif run['mAP'] > high:
        verdict = (f'this run is above it: fine. The range was measured on {where} only; '
                   'another CPU model moves a run by about the spread of the seeds.')
    else:
        verdict = (f'this run is below it. The range was measured on {where} only, and '
                   'another CPU model moves a run by about the spread of the seeds; a '
                   'training that failed ends far lower (a stalled GHM-R run near half '
                   'the mean, see docs/troubleshooting.md).')
    print(f'Measured (docs/toy_results.json, {args.tag}), seeds {seeds[0]}..{seeds[-1]} on '
          f'{where}: bbox mAP {s["mean"]:.3f} ± {s["std"]:.3f} (runs {s["min"]:.3f} to '
          f'{s["max"]:.3f}), range mean ± 3 std [{low:.3f}, {high:.3f}]: {verdict}')
    plots = sorted(glob.glob(osp.join(args.work_dir, 'density_*.png')))
    print('Gradient-density plots (histogram, weights, stall signals): '
          + ', '.join(plots))


if __name__ == '__main__':
    main()
