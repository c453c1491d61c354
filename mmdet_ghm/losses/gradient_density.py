"""The gradient-density histogram with its EMA, shared by GHM-C and GHM-R."""
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..functional import density_weights


class GradientDensity(nn.Module):
    """Per-bin harmonizing weights ``beta = tot / GD(g) / n`` from bin counts:
    one door, :meth:`weigh`, for GHM-C and GHM-R.

    Holds the EMA of the bin counts as the buffer ``acc_sum``, so it is saved in
    checkpoints. The EMA is updated in training mode only; in eval mode the
    weights use the EMA as it would be updated, without storing it.

    With ``sync`` (default) and torch.distributed initialised, the bin counts
    are summed over all ranks in training mode (one all-reduce of ``bins``
    int64 values, asynchronous on NCCL), so every rank applies the weights of
    the global batch and keeps the same EMA.

    Args:
        bins (int): Number of bins splitting [0, 1] evenly.
        momentum (float): EMA momentum in [0, 1); 0 disables the EMA.
        sync (bool): All-reduce the counts across ranks. Default True.
        owner (str): Name of the loss, for error messages.
    """

    def __init__(self, bins: int, momentum: float, sync: bool = True,
                 owner: str = 'GradientDensity'):
        super().__init__()
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f'{owner}: bins must be a positive int, got {bins!r}.')
        if not 0 <= momentum < 1:
            raise ValueError(f'{owner}: momentum must be in [0, 1), got {momentum}; '
                             '0 turns the moving average off.')
        self.bins = bins
        self.momentum = float(momentum)
        self.sync = sync
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
            index, and ``max(tot, 1) / world_size`` (0-dim fp32), ``tot``
            being the number of valid elements of the global batch. Dividing a
            rank's weighted loss sum by it makes DDP's gradient average equal
            the gradient of the paper's loss over the global batch.
        """
        world_size = 1
        if self.training and self.sync and dist.is_available() and dist.is_initialized():
            world_size = dist.get_world_size()
            if world_size > 1:
                counts = counts.clone()
                dist.all_reduce(counts)
        weights, acc_sum, tot = density_weights(counts, self.acc_sum, self.momentum)
        if self.training:
            with torch.no_grad():
                self.acc_sum.copy_(acc_sum)
                self._record(counts, weights, tot)
        normaliser = tot.clamp(min=1)
        return weights, normaliser if world_size == 1 else normaliser / world_size

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

