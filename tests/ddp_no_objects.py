"""Two gloo ranks train mmdet's one-stage detectors with our GHM losses, rank 1's
images having no objects (run by tests/test_tools/test_ddp_no_objects.py).

    python tests/ddp_no_objects.py OUT_DIR TIMEOUT_S CELL [CELL ...]

A CELL is DETECTOR (GHMCLoss as ``loss_cls``) or DETECTOR:LOSS (a key of
tests/helpers.py's DETECTOR_LOSSES), with GHMRLoss as ``loss_bbox`` where the
head regresses deltas. For each cell in turn both ranks build the detector
(``build_detector``), wrap it in DDP, and run two SGD iterations with
SyncStatisticsHook after each, as mmengine's Runner calls it. Each rank then
saves the statistics buffers of our losses and how often each loss was called
to ``OUT_DIR/CELL.rank<r>.pt``. Exits 3 if the ranks have not finished within
TIMEOUT_S seconds (a hang), nonzero if a rank failed.
"""
import os
import sys
import time
from datetime import timedelta
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STEPS = 2


def train(rank, cell, out_dir):
    from mmdet_ghm.hooks import SyncStatisticsHook
    from mmdet_ghm.losses import RankSyncedStatistics
    from tests.helpers import DETECTORS, build_detector, detector_batch

    detector, _, loss_cls = cell.partition(':')
    model = build_detector(detector, loss_cls or 'GHMCLoss', ghmr=DETECTORS[detector][1])
    calls = {}
    for name, loss in (('loss_cls', model.bbox_head.loss_cls),
                       ('loss_bbox', getattr(model.bbox_head, 'loss_bbox', None))):
        if type(loss).__module__.startswith('mmdet_ghm'):
            calls[name] = 0
            loss.register_forward_hook(
                lambda m, *_, name=name: calls.__setitem__(name, calls[name] + 1))
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False,
                                                    find_unused_parameters=True)
    runner = SimpleNamespace(model=ddp)
    hook = SyncStatisticsHook()
    hook.before_train(runner)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for step in range(STEPS):
        data = model.data_preprocessor(detector_batch(objects=rank == 0), True)
        losses = ddp(**data, mode='loss')
        total = sum(v.sum() for k, vs in losses.items() if 'loss' in k
                    for v in (vs if isinstance(vs, list) else [vs]))
        optimizer.zero_grad()
        total.backward()
        # clipped as the detector matrix (test_one_stage_detectors.py) clips
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=35)
        optimizer.step()
        hook.after_train_iter(runner, step)
    stats = {f'{name}.{key}': value.clone() for name, m in model.named_modules()
             if isinstance(m, RankSyncedStatistics) for key, value in m.state_dict().items()}
    torch.save(dict(stats=stats, calls=calls,
                    objects=sum(len(s.gt_instances) for s in data['data_samples'])),
               os.path.join(out_dir, f'{cell}.rank{rank}.pt'))


def rank_main(rank, out_dir, timeout, cells, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    # a collective that waits longer than this raises in gloo (a hang shows as
    # an error as well as by the parent's timeout)
    dist.init_process_group('gloo', rank=rank, world_size=2,
                            timeout=timedelta(seconds=timeout))
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules
    register_all_modules()
    for cell in cells:
        train(rank, cell, out_dir)
    dist.barrier()
    # gloo's threads can keep a finished rank alive at interpreter exit
    os._exit(0)


def main(out_dir, timeout, cells):
    port = 29500 + os.getpid() % 1000
    context = mp.start_processes(rank_main, args=(out_dir, timeout, cells, port),
                                 nprocs=2, join=False, start_method='spawn')
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(deadline - time.monotonic(), 0)):
        if time.monotonic() >= deadline:
            for process in context.processes:
                process.kill()
            print(f'ddp_no_objects: the ranks did not finish within {timeout} s')
            return 3
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:]))
