"""Logs the GHM gradient-density histograms and the equalized focal loss's
per-class gradient ratios, and plots them at the end of training."""
import os.path as osp
from typing import Dict, List

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ..losses import EqualizedFocalLoss, GradientDensity
from .class_counts_hook import dataset_class_counts


# what the hook keeps per loss for the plot, one value per log
SIGNALS = ('iter', 'last_bin_share', 'max_weight', 'grad_norm')


def density_modules(model) -> Dict[str, GradientDensity]:
    """``{name: GradientDensity}`` of the model, with DDP's ``module.`` stripped."""
    return {name.replace('module.', '', 1): m for name, m in model.named_modules()
            if isinstance(m, GradientDensity)}


def efl_modules(model) -> Dict[str, EqualizedFocalLoss]:
    """``{name: EqualizedFocalLoss}`` of the model, with DDP's ``module.`` stripped."""
    return {name.replace('module.', '', 1): m for name, m in model.named_modules()
            if isinstance(m, EqualizedFocalLoss)}


# LVIS's frequency groups by training images per class: rare 1-10, common 11-100,
# frequent > 100 (a class without any image counts as rare)
GROUPS = (('rare', 0, 10), ('common', 11, 100), ('frequent', 101, float('inf')))


def frequency_groups(image_counts: List[int]) -> Dict[str, List[int]]:
    """``{group: [class, ...]}`` of the non-empty LVIS frequency groups."""
    groups = {name: [c for c, n in enumerate(image_counts) if low <= n <= high]
              for name, low, high in GROUPS}
    return {name: classes for name, classes in groups.items() if classes}


def plot_gradient_ratio(name: str, ratio: torch.Tensor, image_counts: List[int],
                        history: Dict[str, list], path: str) -> None:
    """Two panels: the final ratio g_j of each class, the classes sorted by
    training images (most first) and coloured by frequency group, and each
    group's mean g over training (``history``: ``iter`` and a list per group)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    order = sorted(range(len(image_counts)), key=lambda c: -image_counts[c])
    colours = dict(rare='tab:red', common='tab:orange', frequent='tab:blue')
    group_of = {c: g for g, classes in frequency_groups(image_counts).items()
                for c in classes}
    fig, (ax, ax_history) = plt.subplots(2, 1, figsize=(7, 7))
    ax.bar(range(len(order)), [float(ratio[c]) for c in order], width=1.0,
           color=[colours[group_of[c]] for c in order])
    for group, colour in colours.items():
        ax.bar([], [], color=colour, label=group)
    ax.set_xlabel('class, by training images (most first)')
    ax.set_ylabel('g_j = pos / neg gradient (1: focal)')
    ax.set_ylim(0, 1.05)
    ax.set_title(name, fontsize=9)
    ax.legend(loc='upper right', fontsize=8)
    for group, values in history.items():
        if group != 'iter':
            ax_history.plot(history['iter'], values, '.-', color=colours[group],
                            label=f'mean g of the {group} classes')
    ax_history.set_xlabel('iteration')
    ax_history.set_ylabel('mean g_j')
    ax_history.set_ylim(0, 1.05)
    ax_history.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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

    For every EqualizedFocalLoss (``<loss>`` its module path, e.g.
    ``bbox_head.loss_cls``) it logs ``efl/<loss>/g_rare``, ``g_common`` and
    ``g_frequent``: the mean gradient ratio g_j of the classes of each LVIS
    frequency group (training images per class: rare 1-10, common 11-100,
    frequent > 100, counted once when training starts). g_j near 0 means
    the class's positives are still outweighed by its negatives (focusing
    factor near gamma_b + s); near 1, balanced (focal).

    After training writes ``density_<loss>.png`` into the work dir (rank 0): the
    final histogram and weights, and the two signals with mmengine's gradient
    norm over training; for EFL ``efl_<loss>.png``: the final g_j of each class
    sorted by training frequency, the groups marked, and the group means over
    training. Reading the small bin tensors is a host sync every
    ``interval`` iterations, in logging only.

    Args:
        interval (int): Iterations between two logs. Default 50.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50):
        self.interval = interval
        self.signals: Dict[str, Dict[str, list]] = {}
        self.image_counts: List[int] = []
        self.efl_history: Dict[str, Dict[str, list]] = {}

    def before_train(self, runner) -> None:
        losses = efl_modules(runner.model)
        if losses:
            num_classes = next(iter(losses.values())).num_classes
            self.image_counts = dataset_class_counts(runner.train_dataloader.dataset,
                                                     num_classes, per_image=True)

    def efl_scalars(self, runner, step: int) -> dict:
        """The group means of g_j of every EqualizedFocalLoss, kept for the plot."""
        scalars = {}
        groups = frequency_groups(self.image_counts)
        for name, loss in efl_modules(runner.model).items():
            ratio = loss.statistics.pos_neg.cpu()
            history = self.efl_history.setdefault(
                name, dict(iter=[], **{group: [] for group in groups}))
            history['iter'].append(step)
            for group, classes in groups.items():
                mean = float(ratio[classes].mean())
                scalars[f'efl/{name}/g_{group}'] = mean
                history[group].append(mean)
        return scalars

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
        scalars.update(self.efl_scalars(runner, step))
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
        for name, loss in efl_modules(runner.model).items():
            path = osp.join(runner.work_dir, f'efl_{name.replace(".", "_")}.png')
            history = self.efl_history.get(name, dict(iter=[]))
            plot_gradient_ratio(name, loss.statistics.pos_neg.cpu(), self.image_counts,
                                history, path)
            written.append(path)
        if written:
            runner.logger.info('DensityLoggerHook: wrote ' + ', '.join(written))
