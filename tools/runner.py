"""Command-line plumbing of tools/train.py and tools/test.py, and the small fixes
to the ecosystem that they apply."""
import os


def allow_resume_on_new_torch() -> None:
    """Lets mmengine 0.10.7 load its own checkpoints on torch >= 2.6.

    mmengine calls ``torch.load`` without ``weights_only``; since torch 2.6 that
    means ``weights_only=True``, which rejects the message hub and numpy objects
    in every mmengine checkpoint, so ``--resume`` fails (mmengine issue #1655,
    fixed upstream, not released). torch's own switch restores the old default
    for calls that do not choose. Only load checkpoints you trust.
    """
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')


def prepare_distributed_without_gpu(cfg) -> None:
    """Lets ``--launcher pytorch`` run on machines without a GPU (gloo).

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the
    model with ``device_ids=[local_rank]``, which both fail without CUDA. There,
    start the process group with gloo here (mmengine then keeps it) and let DDP
    wrap the CPU model. A no-op with GPUs or without a launcher.
    """
    import torch
    import torch.distributed as dist

    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(type='MMDistributedDataParallel', device_ids=None,
                   broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    cfg.model_wrapper_cfg = wrapper


def add_runner_args(parser) -> None:
    """The arguments tools/train.py and tools/test.py share with mmdet's tools."""
    from mmengine.config import DictAction

    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args):
    """The config of ``args.config`` with the shared arguments applied."""
    import os.path as osp

    from mmengine.config import Config

    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    allow_resume_on_new_torch()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg):
    """mmengine's runner for ``cfg`` (its ``runner_type`` if it names one)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    prepare_distributed_without_gpu(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
