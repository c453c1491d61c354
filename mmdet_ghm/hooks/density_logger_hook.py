"""Logs the GHM gradient-density histograms and plots them at the end of training."""
import os.path as osp
from typing import Dict, List

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ..losses import GradientDensity


def density_modules(model) -> Dict[str, GradientDensity]:
    """``{name: GradientDensity}`` of the model, with DDP's ``module.`` stripped."""
    return {name.replace('module.', '', 1): m for name, m in model.named_modules()
            if isinstance(m, GradientDensity)}


def plot_density(name: str, density: GradientDensity, path: str) -> None:
    """Bar plot of the EMA bin counts (log scale) and the weights the loss
    applied in its last training batch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    counts = density.histogram().cpu()
    weights = density.last_weights.cpu()
    nonempty = weights > 0
    centers = (torch.arange(density.bins) + 0.5) / density.bins
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(centers, counts.clamp(min=1e-1), width=1 / density.bins, color='tab:blue',
           alpha=0.7, label='elements per bin (EMA)')
    ax.set_yscale('log')
    ax.set_xlabel('gradient norm g')
    ax.set_ylabel('number of elements (log)')
    ax.set_xlim(0, 1)
    twin = ax.twinx()
    twin.plot(centers[nonempty], weights[nonempty], 'o-', color='tab:red',
              label='weight applied in the last batch, tot / GD(g) / n')
    twin.set_ylabel('weight')
    twin.set_yscale('log')
    ax.set_title(name, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(loc='lower center', ncol=2, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


@HOOKS.register_module()
class DensityLoggerHook(Hook):
    """Every ``interval`` iterations logs, through the runner's visualizer, each
    GHM loss's density histogram (``ghm/<loss>/bin_XX``: the EMA of the bin
    counts) and the weight of each bin that the loss applied in its last
    training batch (``ghm/<loss>/weight_XX``: tot / GD(g) / n, 0 for empty
    bins); TensorBoard shows them when ``TensorboardVisBackend`` is configured.
    After training writes ``density_<loss>.png`` into the work dir (rank 0).
    Reading the small bin tensors is a host sync every ``interval`` iterations,
    in logging only.

    Args:
        interval (int): Iterations between two logs. Default 50.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50):
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        scalars = {}
        for name, density in density_modules(runner.model).items():
            for key, values in (('bin', density.histogram()),
                                ('weight', density.last_weights)):
                for i, value in enumerate(values.tolist()):
                    scalars[f'ghm/{name}/{key}_{i:02d}'] = value
        if scalars:
            runner.visualizer.add_scalars(scalars, step=runner.iter + 1)

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        written: List[str] = []
        for name, density in density_modules(runner.model).items():
            path = osp.join(runner.work_dir, f'density_{name.replace(".", "_")}.png')
            plot_density(name, density, path)
            written.append(path)
        if written:
            runner.logger.info('DensityLoggerHook: wrote ' + ', '.join(written))
