"""Logs the GHM gradient-density histograms and plots them at the end of training."""
import os.path as osp
from typing import Dict, List

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ..losses import GradientDensity


# what the hook keeps per loss for the plot, one value per log
SIGNALS = ('iter', 'last_bin_share', 'max_weight', 'grad_norm')


def density_modules(model) -> Dict[str, GradientDensity]:
    """``{name: GradientDensity}`` of the model, with DDP's ``module.`` stripped."""
    return {name.replace('module.', '', 1): m for name, m in model.named_modules()
            if isinstance(m, GradientDensity)}


def plot_density(name: str, density: GradientDensity, signals: Dict[str, list],
                 path: str) -> None:
    """Two panels: the EMA bin counts (log scale) with the weights the loss
    applied in its last training call, and the stall signals over training
    (``signals``: ``iter`` and a list of values per signal, as logged)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    counts = density.histogram().cpu()
    weights = density.last_weights.cpu()
    nonempty = weights > 0
    centers = (torch.arange(density.bins) + 0.5) / density.bins
    fig, (ax, ax_signals) = plt.subplots(2, 1, figsize=(7, 7))
    ax.bar(centers, counts.clamp(min=1e-1), width=1 / density.bins, color='tab:blue',
           alpha=0.7, label='elements per bin (EMA)')
    ax.set_yscale('log')
    ax.set_xlabel('gradient norm g')
    ax.set_ylabel('number of elements (log)')
    ax.set_xlim(0, 1)
    twin = ax.twinx()
    twin.plot(centers[nonempty], weights[nonempty], 'o-', color='tab:red',
              label='weight in the last training call, tot / GD(g) / n')
    twin.set_ylabel('weight')
    twin.set_yscale('log')
    ax.set_title(name, fontsize=9)
    ax.legend(loc='upper left', fontsize=8)
    twin.legend(loc='upper right', fontsize=8)
    steps = signals['iter']
    ax_signals.plot(steps, signals['last_bin_share'], '.-', color='tab:blue',
                    label='share of elements in the last bin')
    ax_signals.set_xlabel('iteration')
    ax_signals.set_ylabel('last-bin share')
    ax_signals.set_ylim(0, 1)
    right = ax_signals.twinx()
    right.plot(steps, signals['max_weight'], '.-', color='tab:red', label='largest weight')
    if any(v is not None for v in signals['grad_norm']):
        right.plot(steps, signals['grad_norm'], '.-', color='tab:gray', label='gradient norm')
    right.set_yscale('log')
    ax_signals.legend(loc='upper left', fontsize=8)
    right.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@HOOKS.register_module()
class DensityLoggerHook(Hook):
    """Logs each GHM loss's gradient density and the signals of a stalling run.

    Every ``interval`` iterations logs, through the runner's visualizer
    (TensorBoard shows them when ``TensorboardVisBackend`` is configured):

    ``<density>`` is the module path of the loss's GradientDensity, e.g.
    ``bbox_head.loss_bbox.density``:

    - ``ghm/<density>/bin_XX``: the EMA of the bin counts;
    - ``ghm/<density>/weight_XX``: the weight of each bin that the loss applied in
      its last training call with valid elements (tot / GD(g) / n, 0 for
      empty bins; with per-level calls, the last level that had any);
    - ``ghm/<density>/last_bin_share``: the share of the elements in the last bin
      (g >= 1 - 1 / bins) over all calls of the interval, and
      ``ghm/<density>/max_weight``: the largest weight applied in the interval.
      A GHM-R whose last-bin share stays high while its largest weight grows
      gives the bulk of unfitted boxes ever less weight: the run stalls.

    After training writes ``density_<loss>.png`` into the work dir (rank 0): the
    final histogram and weights, and the two signals with mmengine's gradient
    norm over training. Reading the small bin tensors is a host sync every
    ``interval`` iterations, in logging only.

    Args:
        interval (int): Iterations between two logs. Default 50.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50):
        self.interval = interval
        self.signals: Dict[str, Dict[str, list]] = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        step = runner.iter + 1
        grad_norm = runner.message_hub.log_scalars.get('train/grad_norm')
        scalars = {}
        for name, density in density_modules(runner.model).items():
            for key, values in (('bin', density.histogram()),
                                ('weight', density.last_weights)):
                for i, value in enumerate(values.tolist()):
                    scalars[f'ghm/{name}/{key}_{i:02d}'] = value
            share, max_weight = density.pop_interval_stats()
            scalars[f'ghm/{name}/last_bin_share'] = share
            scalars[f'ghm/{name}/max_weight'] = max_weight
            logged = (step, share, max_weight, grad_norm.current() if grad_norm else None)
            history = self.signals.setdefault(name, {key: [] for key in SIGNALS})
            for key, value in zip(SIGNALS, logged):
                history[key].append(value)
        if scalars:
            runner.visualizer.add_scalars(scalars, step=step)

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        written: List[str] = []
        for name, density in density_modules(runner.model).items():
            path = osp.join(runner.work_dir, f'density_{name.replace(".", "_")}.png')
            signals = self.signals.get(name, {key: [] for key in SIGNALS})
            plot_density(name, density, signals, path)
            written.append(path)
        if written:
            runner.logger.info('DensityLoggerHook: wrote ' + ', '.join(written))
