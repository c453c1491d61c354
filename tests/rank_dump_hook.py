"""A test-only hook: saves each rank's GHM buffers, class-balanced weights and
optimizer state to the work dir, right after a resume (before_train) and at the
end (after_train)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from mmdet_ghm.hooks.density_logger_hook import density_modules
from mmdet_ghm.losses import ClassBalancedFocalLoss


@HOOKS.register_module()
class RankDumpHook(Hook):
    priority = 'LOWEST'

    def _dump(self, runner, when):
        state = {name: m.acc_sum.clone() for name, m in
                 density_modules(runner.model).items()}
        state.update({f'{name}.last_weights': m.last_weights.clone() for name, m in
                      density_modules(runner.model).items()})
        state.update({name.replace('module.', '', 1) + '.class_weight':
                      m.class_weight.clone() for name, m in runner.model.named_modules()
                      if isinstance(m, ClassBalancedFocalLoss)})
        state['iter'] = runner.iter
        state['optimizer'] = runner.optim_wrapper.state_dict()
        torch.save(state, osp.join(runner.work_dir, f'{when}_rank{get_rank()}.pt'))

    def before_train(self, runner):
        self._dump(runner, 'before_train')

    def after_train(self, runner):
        self._dump(runner, 'after_train')
