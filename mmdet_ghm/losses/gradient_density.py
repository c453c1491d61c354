"""The gradient-density histogram with its EMA, shared by GHM-C and GHM-R."""
from typing import Optional

import torch
from torch import Tensor

from ..functional import density_weights
from .rank_sync import RankSyncedStatistics


class GradientDensity(RankSyncedStatistics):
    """Per-bin harmonizing weights ``beta = tot / GD(g) / n`` from bin counts:
    one door, :meth:`weigh`, for GHM-C and GHM-R.

    Holds the EMA of the bin counts as the buffer ``acc_sum``, so it is saved in
    checkpoints. The EMA is updated in training mode only; in eval mode the
    weights use the EMA as it would be updated, without storing it.

    Under torch.distributed every call weighs with this rank's counts (and
    its ``tot``), the EMA being updated from them; with ``sync`` (default),
    ``SyncStatisticsHook`` replaces every rank's EMA by the mean of the ranks'
    EMAs after each training iteration, so all ranks start the next one with
    the same EMA and the checkpoint holds it (see docs/distributed.md). The
    forward issues no collective: a head that calls the loss on some ranks
    only can not hang the job.

    Args:
        bins (int): Number of bins splitting [0, 1] evenly.
        momentum (float): EMA momentum in [0, 1); 0 disables the EMA (then
            nothing is kept or synced).
        sync (bool): Average the EMA across ranks once per iteration. Default True.
        loss_name (str): Name of the loss, for error messages.
    """

    def __init__(self, bins: int, momentum: float, sync: bool = True,
                 loss_name: str = 'GradientDensity'):
        super().__init__(sync, loss_name)
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f'{loss_name}: bins must be a positive int, got {bins!r}.')
        if not 0 <= momentum < 1:
            raise ValueError(f'{loss_name}: momentum must be in [0, 1), got {momentum}; '
                             '0 turns the moving average off.')
        self.bins = bins
        self.momentum = float(momentum)
        self.register_buffer('acc_sum', torch.zeros(bins))
        # what the last training call with valid elements applied, for
        # DensityLoggerHook (device copies)
        self.register_buffer('last_counts', torch.zeros(bins), persistent=False)
        self.register_buffer('last_weights', torch.zeros(bins), persistent=False)
        # since DensityLoggerHook last read them: the counts of all training calls
        # and the largest weight applied (signals of a stalling run)
        self.register_buffer('interval_counts', torch.zeros(bins), persistent=False)
        self.register_buffer('interval_max_weight', torch.zeros(()), persistent=False)

    def weigh(self, counts: Tensor):
        """Per-bin weights and the loss normaliser from this rank's counts.

        Args:
            counts (Tensor): int64 counts (bins,) of this rank's valid elements.

        Returns:
            tuple[Tensor, Tensor]: fp32 weights (bins + 1,), 0 for the overflow
            index, and ``max(tot, 1)`` (0-dim fp32), ``tot`` being the number of
            valid elements of the call.
        """
        if self.training:
            self.check_sync_attached()
        weights, acc_sum, tot = density_weights(counts, self.acc_sum, self.momentum)
        if self.training:
            with torch.no_grad():
                self.acc_sum.copy_(acc_sum)
                self._record(counts, weights, tot)
        return weights, tot.clamp(min=1)

    def statistics_to_sum(self) -> Optional[Tensor]:
        """The EMA (None without momentum: then no state is kept)."""
        return self.acc_sum if self.momentum > 0 else None

    def load_sum(self, summed: Tensor, world_size: int) -> None:
        """The mean of the ranks' EMAs. A rank's EMA is that of its own counts;
        the mean keeps that scale, which the rank's ``tot`` matches."""
        self.acc_sum.copy_(summed / world_size)

    def _record(self, counts: Tensor, weights: Tensor, tot: Tensor) -> None:
        """Keeps what DensityLoggerHook logs of a training call, on the device:
        the counts and weights applied (a call without valid elements, an FPN
        level without positives, keeps the last call that had some), and, since
        the hook last read them, the counts of all calls and the largest weight."""
        has_valid = tot > 0
        torch.where(has_valid, counts, self.last_counts, out=self.last_counts)
        torch.where(has_valid, weights[:-1], self.last_weights, out=self.last_weights)
        self.interval_counts.add_(counts)
        torch.maximum(self.interval_max_weight, weights.max(), out=self.interval_max_weight)

    def histogram(self) -> Tensor:
        """The density estimate the weights come from: the EMA of the counts,
        or the last batch's counts without momentum (for logging)."""
        return self.acc_sum if self.momentum > 0 else self.last_counts

    def pop_interval_stats(self):
        """Share of the elements in the last bin (the least fitted, g >= 1 - 1 /
        bins) and the largest weight applied, over the training calls since the
        last pop (0 without any); resets both. Reads the device: logging only.

        Returns:
            tuple[float, float]: (last-bin share, largest weight).
        """
        total = float(self.interval_counts.sum())
        share = float(self.interval_counts[-1]) / total if total else 0.0
        max_weight = float(self.interval_max_weight)
        self.interval_counts.zero_()
        self.interval_max_weight.zero_()
        return share, max_weight

    def extra_repr(self) -> str:
        return f'bins={self.bins}, momentum={self.momentum}, sync={self.sync}'

