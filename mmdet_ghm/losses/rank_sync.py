"""Statistics of the losses made equal across ranks once per training iteration.

A loss cannot reduce its statistics across ranks in its own forward: many heads
call a loss only where they have positives (``if num_pos > 0`` in FoveaBox,
``if len(pos_inds) > 0`` in FCOS, ATSS, GFL, ...), so a rank without objects
would skip a collective its peers wait in (a hung job under NCCL) or pair its
next collective with theirs. Every rank instead updates its statistics from its
own elements in every call, and :func:`sync_statistics`, called by
``SyncStatisticsHook`` after every training iteration (a point that every rank
reaches once per iteration, whatever its head called), reduces all of them in
ONE all-reduce of a flat fp32 tensor, in the model's module order.
"""
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn


def distributed_world_size() -> int:
    """The number of ranks of torch.distributed's default group; 1 without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class RankSyncedStatistics(nn.Module):
    """Base of the stateful modules whose buffers :func:`sync_statistics`
    makes equal across ranks.

    A subclass returns what to all-reduce (a sum) from
    :meth:`statistics_to_sum` and takes the sum back in :meth:`load_sum`.

    Args:
        sync (bool): Make the statistics equal across ranks. With False each
            rank keeps its own (the checkpoint then holds rank 0's).
        loss_name (str): Name of the loss, for error messages.
    """

    def __init__(self, sync: bool, loss_name: str):
        super().__init__()
        self.sync = sync
        self.loss_name = loss_name
        # set by attach_sync: something calls sync_statistics once per iteration
        self.sync_attached = False

    def statistics_to_sum(self) -> Optional[Tensor]:
        """The fp32 tensor whose sum over ranks :meth:`load_sum` takes, or None
        when the module keeps nothing to share."""
        raise NotImplementedError

    def load_sum(self, summed: Tensor, world_size: int) -> None:
        """Takes the sum over ranks of :meth:`statistics_to_sum`."""
        raise NotImplementedError

    # True where the statistics reach the loss only through load_sum (EFL's
    # per-class sums are folded in once per iteration): then even one process
    # needs sync_statistics, else the statistics would never be used
    folds_per_iteration = False

    def check_sync_attached(self) -> None:
        """Raises in a training call when nothing calls :func:`sync_statistics`
        once per iteration (no SyncStatisticsHook) but something needs it:
        several ranks with ``sync`` (their statistics would drift apart
        silently), or statistics that are only folded in there. No tensor is read."""
        if self.sync_attached or self.statistics_to_sum() is None:
            return
        world_size = distributed_world_size()
        if self.folds_per_iteration:
            why = ('folds the statistics of each iteration into its buffers at the '
                   "iteration's end (without it they would never be used)")
        elif self.sync and world_size > 1:
            why = (f'makes the statistics equal across the {world_size} ranks once per '
                   'iteration (a loss that some heads call on some ranks only can not '
                   'do it in its forward without risking a hang)')
        else:
            return
        raise RuntimeError(
            f'{self.loss_name} needs SyncStatisticsHook, which {why}. Add it to the '
            "config: custom_hooks = [..., dict(type='SyncStatisticsHook')]; outside "
            "mmengine's Runner call mmdet_ghm.losses.attach_sync(model) before "
            'training and mmdet_ghm.losses.sync_statistics(model) after every '
            'iteration, on every rank.' + ('' if self.folds_per_iteration else
                                           ' Or set sync_density=False to keep one '
                                           'statistic per rank.'))


def attach_sync(model: nn.Module) -> None:
    """Declares that :func:`sync_statistics` will be called on every rank after
    every training iteration; the losses' training calls that need it then run
    (without it they refuse, see :meth:`RankSyncedStatistics.check_sync_attached`)."""
    for module in model.modules():
        if isinstance(module, RankSyncedStatistics):
            module.sync_attached = True


def sync_statistics(model: nn.Module) -> None:
    """Reduces the statistics of the model's losses across ranks: one all-reduce
    (sum) of the concatenation of every module's with ``sync``, in module order
    (the same on every rank, as every rank builds the same model); the others
    that fold per iteration take their own. Must be called on every rank the
    same number of times (once per iteration). Without torch.distributed or
    with one rank nothing is communicated."""
    world_size = distributed_world_size()
    modules = [m for m in model.modules()
               if isinstance(m, RankSyncedStatistics) and m.statistics_to_sum() is not None]
    shared = [m for m in modules if m.sync] if world_size > 1 else []
    for module in modules:
        if module not in shared and module.folds_per_iteration:
            module.load_sum(module.statistics_to_sum(), 1)
    if not shared:
        return
    parts = [m.statistics_to_sum() for m in shared]
    flat = torch.cat([p.reshape(-1).float() for p in parts])
    dist.all_reduce(flat)
    for module, part, summed in zip(shared, parts, flat.split([p.numel() for p in parts])):
        module.load_sum(summed.view_as(part), world_size)
