"""The gradient-density histogram with its EMA, shared by GHM-C and GHM-R."""
import torch
from torch import Tensor, nn

from ..functional import bin_counts, bin_index, density_weights


class GradientDensity(nn.Module):
    """Per-element harmonizing weights ``beta = tot / GD(g) / n``.

    Holds the EMA of the bin counts as the buffer ``acc_sum``, so it is saved in
    checkpoints. The EMA is updated in training mode only; in eval mode the
    weights use the EMA as it would be updated, without storing it.

    Args:
        bins (int): Number of bins splitting [0, 1] evenly.
        momentum (float): EMA momentum in [0, 1); 0 disables the EMA.
        owner (str): Name of the loss, for error messages.
    """

    def __init__(self, bins: int, momentum: float, owner: str = 'GradientDensity'):
        super().__init__()
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f'{owner}: bins must be a positive int, got {bins!r}.')
        if not 0 <= momentum < 1:
            raise ValueError(f'{owner}: momentum must be in [0, 1), got {momentum}; '
                             '0 turns the moving average off.')
        self.bins = bins
        self.momentum = float(momentum)
        self.register_buffer('acc_sum', torch.zeros(bins))
        self.register_buffer('last_counts', torch.zeros(bins), persistent=False)

    def forward(self, g: Tensor, valid: Tensor):
        """Weights of elements with gradient norms ``g``.

        Args:
            g (Tensor): fp32 gradient norms, any shape.
            valid (Tensor): bool mask of g's shape, False for ignored elements.

        Returns:
            tuple[Tensor, Tensor]: fp32 weights of g's shape (0 for ignored
            elements) and ``tot``, the number of valid elements (0-dim fp32).
        """
        idx = bin_index(g, self.bins, valid)
        return self.weights_of(idx, bin_counts(idx, self.bins))

    def weights_of(self, idx: Tensor, counts: Tensor):
        """Weights of elements in bins ``idx`` (``bins`` = ignored), and ``tot``."""
        bin_weights, tot = self.weigh(counts)
        return bin_weights[idx], tot

    def weigh(self, counts: Tensor):
        """Per-bin weights (bins + 1,) from int64 counts (bins,), and ``tot``."""
        weights, acc_sum, tot = density_weights(counts, self.acc_sum, self.momentum)
        if self.training:
            with torch.no_grad():
                self.last_counts.copy_(counts)
                self.acc_sum.copy_(acc_sum)
        return weights, tot

    def histogram(self) -> Tensor:
        """The density estimate the weights come from: the EMA of the counts,
        or the last batch's counts without momentum (for logging)."""
        return self.acc_sum if self.momentum > 0 else self.last_counts

    def extra_repr(self) -> str:
        return f'bins={self.bins}, momentum={self.momentum}'

