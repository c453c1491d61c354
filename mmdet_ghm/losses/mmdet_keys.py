"""Loading a checkpoint trained with mmdet's ``GHMC`` / ``GHMR`` into our losses.

mmdet's losses keep the EMA of the bin counts as their own buffer ``acc_sum``
(registered only with ``momentum > 0``) and the bin edges as the buffer
``edges`` (``bins + 1`` values); ours keep the EMA in their
:class:`GradientDensity`, under ``density.acc_sum``, and derive the edges from
``bins``. A state-dict pre-hook on GHMCLoss and GHMRLoss renames the old keys
before the loss loads, so the EMA of a checkpoint of mmdet's losses is carried
through ``load_state_dict`` (strict or not), mmengine's ``load_checkpoint`` and
the runner's ``load_from`` / ``resume``, instead of being dropped as an
unexpected key.
"""
import warnings

import torch
from torch import nn

MMDET_NAMES = {'GHMCLoss': 'GHMC', 'GHMRLoss': 'GHMR'}


def map_mmdet_keys(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Renames mmdet's ``<prefix>acc_sum`` to ``<prefix>density.acc_sum`` and
    drops its ``<prefix>edges`` (the loss's ``bins`` sets ours), in place.

    Nothing happens to a state dict of our own (no ``<prefix>edges`` nor
    ``<prefix>acc_sum``), nor where ``density.acc_sum`` is already there (the
    old key is then left, and reported as unexpected). mmdet's loss with
    ``momentum=0`` keeps no ``acc_sum``: the EMA of ours then starts from zero,
    as it does in a new run (a warning says so where ours has a momentum).

    Raises:
        ValueError: mmdet's loss had another number of bins than this one.
    """
    old_acc, old_edges = prefix + 'acc_sum', prefix + 'edges'
    new_acc = prefix + 'density.acc_sum'
    if old_acc not in state_dict and old_edges not in state_dict:
        return
    name = type(module).__name__
    mmdet_name = MMDET_NAMES.get(name, 'GHMC/GHMR')
    where = prefix[:-1] or 'the model'
    ours = module.density.bins
    theirs = {}
    if old_edges in state_dict:
        theirs['edges'] = state_dict[old_edges].numel() - 1
    if old_acc in state_dict:
        theirs['acc_sum'] = state_dict[old_acc].numel()
    for key, bins in theirs.items():
        if bins != ours:
            raise ValueError(
                f"{name} at '{where}': the checkpoint holds mmdet's {mmdet_name} with "
                f"bins={bins} (its {key} has {state_dict[prefix + key].numel()} values), "
                f'this loss has bins={ours}. Its moving average of the bin counts '
                f'can only be carried into the same bins: set bins={bins} in the '
                f"config's {name} to load it.")
    state_dict.pop(old_edges, None)
    if new_acc in state_dict:
        return
    if old_acc in state_dict:
        state_dict[new_acc] = state_dict.pop(old_acc)
        return
    # mmdet's loss had momentum=0 and kept no moving average
    state_dict[new_acc] = torch.zeros(ours)
    if module.density.momentum > 0:
        warnings.warn(
            f"{name} at '{where}': the checkpoint holds mmdet's {mmdet_name} with "
            'momentum=0, which keeps no moving average of the bin counts; that of '
            f'this loss (momentum={module.density.momentum}) starts from zero, as '
            'in a new run.', stacklevel=2)


def register_mmdet_keys_hook(module: nn.Module) -> None:
    """Registers :func:`map_mmdet_keys` as a state-dict load pre-hook of the
    GHM loss ``module`` (the public method where torch has it, torch 2.1's
    private one with the module passed where it does not)."""
    register = getattr(module, 'register_load_state_dict_pre_hook', None)
    if register is not None:
        register(map_mmdet_keys)
    else:
        module._register_load_state_dict_pre_hook(map_mmdet_keys, with_module=True)
