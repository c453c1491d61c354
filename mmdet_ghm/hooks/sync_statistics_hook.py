"""Makes the losses' statistics equal across ranks once per training iteration."""
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ..losses import attach_sync, sync_statistics


@HOOKS.register_module()
class SyncStatisticsHook(Hook):
    """Reduces the statistics of our losses across ranks after every training
    iteration (GHM-C's and GHM-R's EMA of the bin counts: the mean of the
    ranks'), in one all-reduce.

    Every rank reaches ``after_train_iter`` once per iteration whatever its head
    called, so the reduction can neither hang nor pair with another collective,
    as one inside the loss would when a head calls the loss only on ranks with
    positives. With one process it does nothing. It runs before the checkpoint
    is saved, so the checkpoint holds the shared statistics.
    """

    priority = 'ABOVE_NORMAL'

    def before_train(self, runner) -> None:
        attach_sync(runner.model)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        sync_statistics(runner.model)
