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
