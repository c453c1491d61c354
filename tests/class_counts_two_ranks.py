"""ClassCountsHook on two gloo ranks, outside mmengine's Runner (which also
broadcasts rank 0's state after ``before_run``): rank 1's dataset lists other
instances, so only the hook's own broadcast can give it rank 0's weights.

    python tests/class_counts_two_ranks.py OUT   # writes OUT.rank0, OUT.rank1
"""
import logging
import os
import sys
import types

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.runner import BaseLoop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from mmdet_ghm.hooks import ClassCountsHook  # noqa: E402
from mmdet_ghm.losses import ClassBalancedFocalLoss  # noqa: E402

CLASSES = ('a', 'b', 'c')
# rank 0 sees 3, 2 and 1 instances of the classes; rank 1 one of each
INSTANCES = {0: [0, 0, 0, 1, 1, 2], 1: [0, 1, 2]}


class TrainLoop(BaseLoop):
    """What the hook takes for a training run (Runner.train built its loop)."""

    def __init__(self):  # no runner or dataloader needed here
        pass

    def run(self):
        pass


class Dataset:
    metainfo = dict(classes=CLASSES)

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return 1

    def get_data_info(self, i):
        return dict(instances=[dict(bbox_label=label, ignore_flag=0) for label in self.labels])


def rank_main(rank, out, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    loss = ClassBalancedFocalLoss(beta=0.9)
    runner = types.SimpleNamespace(
        _train_loop=TrainLoop(), model=torch.nn.ModuleList([loss]),
        train_dataloader=types.SimpleNamespace(dataset=Dataset(INSTANCES[rank])),
        logger=logging.getLogger('class_counts_two_ranks'))
    runner.model.register_parameter('p', torch.nn.Parameter(torch.zeros(1)))
    ClassCountsHook().before_run(runner)
    torch.save(dict(counts=loss.class_counts, weight=loss.class_weight), f'{out}.rank{rank}')
    dist.barrier()
    os._exit(0)  # gloo's threads can keep a finished rank alive at exit


if __name__ == '__main__':
    mp.spawn(rank_main, args=(sys.argv[1], 29500 + os.getpid() % 1000), nprocs=2)
