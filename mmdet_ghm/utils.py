"""Small fixes to the ecosystem that the tools apply."""
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
