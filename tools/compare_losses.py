"""Trains toy variants over several seeds and tabulates mean and spread.

    python tools/compare_losses.py [--seeds 3] [--iters 1500] [--variants ghm focal ...]
        [--cfg-options k=v ...] [--tag NAME] [--jobs 2] [--out-dir work_dirs/compare]
        [--dataset coco|lvis|detectors]

Each (variant, seed) trains configs/toy/retinanet_r18_fpn_<variant>-1500it_toy.py
(underscores of the variant written as hyphens) with
tools/train.py into OUT/<tag or variant>/seed<k> and is evaluated with CocoMetric
at the end. ``--dataset lvis`` trains configs/toy_lvis/retinanet_r18_fpn_<variant>-
1000it_toy-lvis.py instead (the long-tailed set of tools/make_toy_lvis.py, default
OUT work_dirs/compare_lvis) and reports LVIS's AP, APr, APc and APf. A run whose ``run.json`` already holds a result for the same
iterations and options is not trained again, so an interrupted comparison picks
up where it stopped. A run that fails (a diverged loss raises) is counted as
diverged and kept with its error. ``--cfg-options`` go to every run of this call
(ablations: ``--variants ghm --tag ghm_mom0 --cfg-options
model.bbox_head.loss_cls.momentum=0 model.bbox_head.loss_bbox.momentum=0``).

Writes OUT/results.json (every run's numbers, keyed by tag) and OUT/results.md (per
tag: mean, standard deviation, min and max of bbox mAP, AP75 and the two rarest
classes' AP, diverged runs, minutes per run, and the machine).
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIGS = dict(
    coco=osp.join(ROOT, 'configs', 'toy', 'retinanet_r18_fpn_{}-1500it_toy.py'),
    lvis=osp.join(ROOT, 'configs', 'toy_lvis', 'retinanet_r18_fpn_{}-1000it_toy-lvis.py'),
    # the other one-stage detectors on the toy COCO set: the variant is the config's
    # name up to -1500it_toy (fcos_r18_fpn_ghmc, rtmdet_tiny_qfl, ...)
    detectors=osp.join(ROOT, 'configs', 'toy_detectors', '{}-1500it_toy.py'))


def toy_config(variant: str, dataset: str = 'coco') -> str:
    """The config of a toy variant ('cb_focal': ...fpn_cb-focal-1500it_toy.py)."""
    return TOY_CONFIGS[dataset].format(
        variant if dataset == 'detectors' else variant.replace('_', '-'))


def toy_variants(dataset: str) -> tuple:
    prefix, suffix = osp.basename(TOY_CONFIGS[dataset]).split('{}')
    names = (osp.basename(p)[len(prefix):-len(suffix)]
             for p in glob.glob(TOY_CONFIGS[dataset].format('*')))
    return tuple(sorted(n if dataset == 'detectors' else n.replace('-', '_') for n in names))


VARIANTS = toy_variants('coco')
RAREST = ('ring', 'cross')  # the toy data's two rarest classes
METRICS = ('mAP', 'AP75') + tuple(f'AP_{c}' for c in RAREST)
# LVIS's AP over its frequency groups: rare (1-10 training images), common, frequent
LVIS_METRICS = ('mAP', 'AP75', 'APr', 'APc', 'APf')
DATASET_METRICS = dict(coco=METRICS, lvis=LVIS_METRICS, detectors=METRICS)
DEFAULT_ITERS = dict(coco=1500, lvis=1000, detectors=1500)  # the toy configs' own max_iters


def machine(cpuinfo: str = '/proc/cpuinfo') -> str:
    """CPU model and core count, e.g. 'AMD EPYC (family 25, model 17), 2 cores': the
    family and model numbers tell apart CPUs that a virtual machine names alike,
    and runs of one seed differ between them."""
    model = platform.processor() or platform.machine()
    try:
        with open(cpuinfo) as f:
            fields = {}
            for line in f:
                key, _, value = line.partition(':')
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break  # the first processor is enough
    except OSError:
        fields = {}
    if 'model name' in fields:
        model = fields['model name']
        if 'cpu family' in fields and 'model' in fields:
            model += f' (family {fields["cpu family"]}, model {fields["model"]})'
    return f'{model}, {os.cpu_count()} cores'


def training_records(work_dir: str) -> list:
    """The records of the run's (last) scalars.json."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no scalars.json under {work_dir}: did training fail?')
    with open(logs[-1]) as f:
        return [json.loads(line) for line in f]


# what mmdet's CocoMetric logs, instead of metrics, for a model that detects nothing
NO_DETECTIONS = 'The testing results of the whole dataset is empty'


def final_metrics(work_dir: str, iters: int, dataset: str = 'coco') -> dict:
    """The run's last CocoMetric (or LVISMetric) record and its last logged
    training losses. A model that detected nothing above the score threshold (the
    metric logs no metrics for it) scores 0 everywhere and is marked
    ``no_detections``."""
    records = training_records(work_dir)
    first_key = 'coco/bbox_mAP' if dataset != 'lvis' else 'lvis/bbox_AP'
    evaluated = [r for r in records if first_key in r]
    trained = [r for r in records if 'loss' in r]
    if evaluated and dataset != 'lvis':
        metric = evaluated[-1]
        result = dict(mAP=metric['coco/bbox_mAP'], AP50=metric['coco/bbox_mAP_50'],
                      AP75=metric['coco/bbox_mAP_75'],
                      **{f'AP_{c}': metric[f'coco/{c}_precision'] for c in RAREST})
    elif evaluated:
        metric = evaluated[-1]
        result = dict(mAP=metric['lvis/bbox_AP'],
                      **{k: metric[f'lvis/bbox_{k}'] for k in ('AP50', 'AP75', 'APr',
                                                               'APc', 'APf')})
    else:
        with open(osp.join(work_dir, 'train.out')) as f:
            detected_nothing = NO_DETECTIONS in f.read()
        if not (detected_nothing and trained and trained[-1]['step'] == iters):
            metric_name = 'CocoMetric' if dataset != 'lvis' else 'LVISMetric'
            raise RuntimeError(f'{work_dir}: the log has no {metric_name} result')
        result = dict(AP50=0.0, **{m: 0.0 for m in DATASET_METRICS[dataset]},
                      no_detections=True)
    if trained:
        result.update({k: trained[-1][k] for k in ('loss_cls', 'loss_bbox')
                       if k in trained[-1]})
    return result


def stall_signals(work_dir: str) -> dict:
    """Means over the second half of training of what DensityLoggerHook and
    mmengine log: each GHM loss's last-bin share and largest weight
    (``<loss>/last_bin_share``, ``<loss>/max_weight``) and the gradient norm."""
    records = training_records(work_dir)
    last_step = max(r.get('step', 0) for r in records)
    late = [r for r in records if r.get('step', 0) > last_step / 2]
    signals = {}
    for r in late:
        for key, value in r.items():
            if key.endswith(('/last_bin_share', '/max_weight')) or key == 'grad_norm':
                name = key.replace('ghm/bbox_head.', '').replace('.density', '')
                signals.setdefault(name, []).append(value)
    return {k: sum(v) / len(v) for k, v in signals.items()}


def schedule_options(iters: int) -> list:
    """The toy schedule (configs/toy/_base_: warm-up, then steps at 75% and
    92%) stretched to ``iters``: the config computes its milestones from its own
    max_iters, which ``train_cfg.max_iters`` alone would not move."""
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.1.end={iters}',
            f'param_scheduler.1.milestones=[{int(iters * 0.75)},{int(iters * 0.92)}]']


def train_one(variant: str, seed: int, iters: int, options: list, work_dir: str,
              threads: int, echo: bool = False, dataset: str = 'coco') -> dict:
    """Trains one run (or reads its stored result) and returns its record. The
    training log goes to ``work_dir/train.out`` (and to stdout with ``echo``)."""
    record_path = osp.join(work_dir, 'run.json')
    key = dict(variant=variant, seed=seed, iters=iters, options=options, dataset=dataset)
    if osp.exists(record_path):
        with open(record_path) as f:
            record = json.load(f)
        if {k: record.get(k, 'coco' if k == 'dataset' else None) for k in key} == key:
            return record
    config = toy_config(variant, dataset)
    os.makedirs(work_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    with open(osp.join(work_dir, 'train.out'), 'w', buffering=1) as out:
        proc = subprocess.Popen(
            [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
             '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}',
             *schedule_options(iters), *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        last_line = ''
        for line in proc.stdout:
            out.write(line)
            last_line = line.strip() or last_line
            if echo:
                sys.stdout.write(line)
        proc.wait()
    record = dict(key, minutes=(time.time() - start) / 60, diverged=proc.returncode != 0,
                  machine=machine(), threads=threads)
    if proc.returncode:
        record['error'] = last_line or f'exit code {proc.returncode}'
    else:
        record.update(final_metrics(work_dir, iters, dataset))
        record['diverged'] = not all(math.isfinite(record.get(k, 0.0))
                                     for k in ('loss_cls', 'loss_bbox'))
    with open(record_path, 'w') as f:
        json.dump(record, f, indent=2)
    return record


def collect(out_dir: str) -> dict:
    """``{tag: {variant, iters, options, runs}}`` from every OUT/<tag>/seed*/run.json,
    so comparisons run by separate calls (or at the same time) all end up in one
    table."""
    results = {}
    for path in sorted(glob.glob(osp.join(out_dir, '*', 'seed*', 'run.json'))):
        with open(path) as f:
            run = json.load(f)
        tag = osp.basename(osp.dirname(osp.dirname(path)))
        entry = results.setdefault(tag, dict(variant=run['variant'], iters=run['iters'],
                                             options=run['options'], runs=[]))
        if run.get('dataset', 'coco') != 'coco':
            entry['dataset'] = run['dataset']
        if (entry['variant'], entry['iters'], entry['options']) != (
                run['variant'], run['iters'], run['options']):
            raise ValueError(f'{osp.join(out_dir, tag)} mixes runs of different variants, '
                             'iterations or options; remove it or give another --tag.')
        logged = glob.glob(osp.join(osp.dirname(path), '*', 'vis_data', 'scalars.json'))
        if logged:  # blank in the per-run table where the logs are gone
            run['signals'] = stall_signals(osp.dirname(path))
        entry['runs'].append(run)
    for entry in results.values():
        entry['runs'].sort(key=lambda r: r['seed'])
    return results


def summarise(runs: list, metrics: tuple = METRICS) -> dict:
    """Mean, sample standard deviation, min and max of each metric over the
    runs that finished; NaN where none did."""
    done = [r for r in runs if not r['diverged']]
    summary = dict(runs=len(runs), diverged=len(runs) - len(done),
                   minutes=sum(r['minutes'] for r in runs) / len(runs))
    for m in metrics:
        values = [r[m] for r in done]
        mean = sum(values) / len(values) if values else math.nan
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
               if len(values) > 1 else math.nan)
        summary[m] = dict(mean=mean, std=std, min=min(values, default=math.nan),
                          max=max(values, default=math.nan))
    return summary


def results_dataset(results: dict) -> str:
    """The toy dataset of every tag of ``results`` ('coco' or 'lvis')."""
    datasets = {entry.get('dataset', 'coco') for entry in results.values()}
    if len(datasets) > 1:
        raise ValueError(f'the results mix the toy datasets {sorted(datasets)}; '
                         'tabulate each from its own --out-dir.')
    return datasets.pop() if datasets else 'coco'


def table(results: dict) -> str:
    dataset = results_dataset(results)
    metrics = DATASET_METRICS[dataset]
    names = ('AP75', f'AP {RAREST[0]} (rarest)', f'AP {RAREST[1]}') if dataset != 'lvis' \
        else ('AP75', 'APr (rare)', 'APc (common)', 'APf (frequent)')
    lines = ['| variant | iters | runs | diverged | bbox mAP mean ± std [min, max] | '
             + ' | '.join(names) + ' | min/run |',
             '|---|---:|---:|---:|---|' + '---|' * len(names) + '---:|']
    for tag, entry in results.items():
        s = summarise(entry['runs'], metrics)
        cells = [f'{s[m]["mean"]:.3f} ± {s[m]["std"]:.3f} [{s[m]["min"]:.3f}, '
                 f'{s[m]["max"]:.3f}]' for m in metrics]
        lines.append(f'| {tag} | {entry["iters"]} | {s["runs"]} | {s["diverged"]} | ' + ' | '.join(cells)
                     + f' | {s["minutes"]:.1f} |')
    return '\n'.join(lines)


def per_run_table(results: dict, tags: list) -> str:
    """One row per run: its metrics, final GHM-R loss and stall signals."""
    unknown = [t for t in tags if t not in results]
    if unknown:
        raise SystemExit(f'compare_losses: no finished runs of {", ".join(unknown)}; '
                         f'the stored tags are {", ".join(results) or "none"}.')
    if results_dataset({t: results[t] for t in tags}) == 'lvis':
        return lvis_per_run_table(results, tags)
    names = ('loss_bbox/last_bin_share', 'loss_bbox/max_weight', 'loss_cls/max_weight',
             'grad_norm')
    lines = ['| variant | seed | bbox mAP | AP75 | final loss_bbox | ' + ' | '.join(names)
             + ' |', '|---|---:|---:|---:|---:|' + '---:|' * len(names)]
    for tag in tags:
        for run in results[tag]['runs']:
            if run['diverged']:
                lines.append(f'| {tag} | {run["seed"]} | diverged: {run.get("error")} |')
                continue
            signals = run.get('signals', {})
            cells = [f'{signals[n]:.3g}' if n in signals else '' for n in names]
            lines.append(f'| {tag} | {run["seed"]} | {run["mAP"]:.3f} | {run["AP75"]:.3f} | '
                         f'{run.get("loss_bbox", math.nan):.3f} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def lvis_per_run_table(results: dict, tags: list) -> str:
    """One row per run of the LVIS toy set: AP, APr, APc, APf, final losses."""
    lines = ['| variant | seed | bbox AP | APr | APc | APf | final loss_cls | final loss_bbox |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for tag in tags:
        for run in results[tag]['runs']:
            if run['diverged']:
                lines.append(f'| {tag} | {run["seed"]} | diverged: {run.get("error")} |')
                continue
            lines.append(f'| {tag} | {run["seed"]} | ' + ' | '.join(
                f'{run[m]:.3f}' for m in ('mAP', 'APr', 'APc', 'APf')) + ' | ' + ' | '.join(
                f'{run.get(k, math.nan):.3f}' for k in ('loss_cls', 'loss_bbox')) + ' |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, default=3, help='seeds 0 .. K-1')
    parser.add_argument('--iters', type=int,
                        help="default the toy configs' own: 1500 (coco), 1000 (lvis)")
    parser.add_argument('--dataset', choices=tuple(TOY_CONFIGS), default='coco',
                        help='coco: the toy set of make_toy_coco.py (configs/toy); '
                        'lvis: the long-tailed one of make_toy_lvis.py (configs/toy_lvis); '
                        'detectors: the toy COCO set with the other one-stage '
                        'detectors (configs/toy_detectors)')
    parser.add_argument('--variants', nargs='+',
                        help='toy configs to train (default all of the dataset\'s): '
                        f'coco {", ".join(VARIANTS)}; lvis {", ".join(toy_variants("lvis"))}')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every run of this call')
    parser.add_argument('--tag', help='name of the result (one variant only); '
                        'default the variant name')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs in parallel, the cores shared among them')
    parser.add_argument('--threads', type=int,
                        help='torch threads per run; default the cores / --jobs')
    parser.add_argument('--out-dir', help='default work_dirs/compare (coco), '
                        'work_dirs/compare_lvis (lvis)')
    parser.add_argument('--results', metavar='JSON',
                        help='print the summary and per-run tables of a stored '
                        'results.json (e.g. docs/toy_results.json; the tags of '
                        '--per-run, or all) and train nothing')
    parser.add_argument('--per-run', nargs='*', metavar='TAG',
                        help='only print one row per stored run of these tags (all '
                        'without a tag): metrics and the stall signals of the second '
                        'half of training; trains nothing')
    args = parser.parse_args()
    if args.results:  # print the tables of a stored comparison
        with open(args.results) as f:
            results = json.load(f)
        tags = args.per_run or list(results)
        runs = per_run_table(results, tags)  # checks the tags
        print(table({t: results[t] for t in tags}) + '\n\n' + runs)
        return
    args.out_dir = args.out_dir or osp.join(
        'work_dirs', 'compare' if args.dataset == 'coco' else f'compare_{args.dataset}')
    if args.per_run is not None:
        results = collect(args.out_dir)
        print(per_run_table(results, args.per_run or list(results)))
        return
    args.iters = args.iters or DEFAULT_ITERS[args.dataset]
    known = toy_variants(args.dataset)
    args.variants = args.variants or list(known)
    unknown = [v for v in args.variants if v not in known]
    if unknown:
        parser.error(f'no {args.dataset} toy config for {", ".join(unknown)}; the '
                     f'variants are {", ".join(known)}')
    if args.seeds < 1:
        parser.error(f'--seeds must be >= 1, got {args.seeds}')
    if args.tag and len(args.variants) != 1:
        parser.error('--tag names the result of one variant; give one --variants')
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    jobs = [(args.tag or v, v, seed) for seed in range(args.seeds) for v in args.variants]
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: train_one(
            job[1], job[2], args.iters, args.cfg_options,
            osp.join(args.out_dir, job[0], f'seed{job[2]}'), threads,
            dataset=args.dataset), jobs))
    results = collect(args.out_dir)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    runs = [run for entry in results.values() for run in entry['runs']]
    machines = sorted({run.get('machine', 'not recorded') for run in runs})
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(f'Every tag under {args.out_dir}, trained on {"; ".join(machines)}: '
                f'{len(runs)} runs, {sum(r["minutes"] for r in runs):.0f} run-minutes '
                f'in all; options in results.json\n\n{table(results)}\n')
    this_call = {tag: results[tag] for tag in dict.fromkeys(job[0] for job in jobs)}
    print(f'\n{machine()}, {args.jobs} run(s) in parallel, this call '
          f'{(time.time() - start) / 60:.1f} min\n{table(this_call)}')


if __name__ == '__main__':
    main()
