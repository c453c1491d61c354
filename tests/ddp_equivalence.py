"""Two gloo ranks with half a batch each against one process with the whole
batch (run by tests/test_tools/test_ddp_equivalence.py).

    python tests/ddp_equivalence.py SYNC HALVES OUT.pt

Each rank builds the same GHMRetinaHead (GHM-C + GHM-R), wraps it in DDP,
runs its half of a 4-image batch through forward, ``loss_by_feat`` and
backward, makes the statistics equal across ranks (``sync_statistics``, as
SyncStatisticsHook does after an iteration), and saves DDP's averaged
gradients and the EMA buffers before and after that; the single-process
reference does the same with all 4 images. HALVES is ``halves`` (images 0, 1
on rank 0 and 2, 3 on rank 1) or ``same`` (images 0, 1 on both ranks, the
single process seeing 0, 1, 0, 1).
"""
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import mmdet_ghm  # noqa: E402,F401
from mmdet_ghm.losses import attach_sync, sync_statistics  # noqa: E402
from tests.helpers import GHM_LOSSES, IMG, NUM_CLASSES, head_cfg  # noqa: E402

register_all_modules()
IMAGES, CHANNELS = 4, 8


def build_head(sync):
    cfg = head_cfg('GHMRetinaHead', GHM_LOSSES)
    cfg['loss_cls'] = dict(cfg['loss_cls'], sync_density=sync)
    cfg['loss_bbox'] = dict(cfg['loss_bbox'], sync_density=sync)
    torch.manual_seed(0)
    return MODELS.build(cfg).train()


def batch():
    gen = torch.Generator().manual_seed(1)
    feats = [torch.randn(IMAGES, CHANNELS, IMG // s, IMG // s, generator=gen)
             for s in (8, 16, 32, 64, 128)]
    gts = []
    for _ in range(IMAGES):
        xy = torch.rand(3, 2, generator=gen) * 80
        wh = 10 + torch.rand(3, 2, generator=gen) * 40
        gts.append(InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                labels=torch.randint(0, NUM_CLASSES, (3, ), generator=gen)))
    metas = [dict(img_shape=(IMG, IMG), pad_shape=(IMG, IMG), batch_input_shape=(IMG, IMG))
             for _ in range(IMAGES)]
    return feats, gts, metas


def ema(head):
    return {n: b.clone() for n, b in head.named_buffers() if n.endswith('acc_sum')}


def step(model, head, images):
    feats, gts, metas = batch()
    cls_scores, bbox_preds = model([f[images] for f in feats])
    losses = head.loss_by_feat(cls_scores, bbox_preds, [gts[i] for i in images],
                               [metas[i] for i in images])
    sum(sum(v) for v in losses.values()).backward()
    rank_ema = ema(head)
    sync_statistics(head)
    return dict(grads={n: p.grad.clone() for n, p in head.named_parameters()},
                rank_ema=rank_ema, ema=ema(head))


def rank_main(rank, sync, images, out, port):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    head = build_head(sync)
    attach_sync(head)
    model = torch.nn.parallel.DistributedDataParallel(head, broadcast_buffers=False)
    result = step(model, head, images[rank])
    torch.save(result, f'{out}.rank{rank}')
    dist.barrier()
    # gloo's threads can keep a finished rank alive at interpreter exit
    os._exit(0)


if __name__ == '__main__':
    sync, halves, out = sys.argv[1] == 'sync', sys.argv[2] == 'halves', sys.argv[3]
    images = [[0, 1], [2, 3]] if halves else [[0, 1], [0, 1]]
    head = build_head(sync)
    torch.save(step(head, head, images[0] + images[1]), f'{out}.single')
    mp.spawn(rank_main, args=(sync, images, out, 29500 + os.getpid() % 1000), nprocs=2)
