"""What the loss modules share: constructor keys and reductions."""
import inspect
from typing import Optional

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def always_sigmoid(cfg: dict) -> bool:
    """``config_uses_sigmoid`` of a loss that is sigmoid based whatever its config:
    GHMRetinaHead then predicts C scores per anchor."""
    return True


def reject_unknown_keys(loss: type, unknown: dict) -> None:
    """A clear error for constructor keys the loss does not take, naming the
    usual cause: a loss dict merged into the one of an inherited base config."""
    if not unknown:
        return
    taken = [name for name in inspect.signature(loss.__init__).parameters
             if name not in ('self', 'unknown')]
    raise TypeError(
        f'{loss.__name__} got keys it does not take: {", ".join(sorted(unknown))}. '
        "In a config that inherits a model (e.g. mmdet::retinanet/...), a loss dict "
        "is merged into the base's loss (FocalLoss brings gamma and alpha): add "
        f"_delete_=True to the dict to replace it, e.g. loss_cls=dict(_delete_=True, "
        f"type='{loss.__name__}', ...). {loss.__name__} takes: {', '.join(taken)}.")


def check_reduction(loss_name: str, reduction: Optional[str]) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss_name}: reduction must be one of {REDUCTIONS}, "
                         f"got {reduction!r}.")


def resolve_reduction(loss_name: str, reduction: str,
                      reduction_override: Optional[str]) -> str:
    if reduction_override is None:
        return reduction
    check_reduction(loss_name, reduction_override)
    return reduction_override


def normalise(total: Tensor, reduction: str, denominator) -> Tensor:
    """The last step of a reduction: 'none' and 'sum' return ``total`` (the
    elementwise losses or their sum), 'mean' divides it by ``denominator``."""
    return total / denominator if reduction == 'mean' else total


def mean_denominator(loss_name: str, reduction: str, avg_factor, numel: int):
    """mmdet's 'mean': over ``avg_factor`` (+ eps, as ``weight_reduce_loss``) when
    given, else over the number of elements (at least 1, so empty input gives 0).
    Like ``weight_reduce_loss``, ``avg_factor`` with 'sum' is an error."""
    if avg_factor is not None and reduction == 'sum':
        raise ValueError(f"{loss_name}: avg_factor can not be used with reduction='sum' "
                         "(it divides a 'mean'); drop avg_factor or use 'mean'.")
    if avg_factor is None:
        return max(numel, 1)
    return avg_factor + torch.finfo(torch.float32).eps


def reduce_loss(loss_name: str, loss: Tensor, reduction: str, avg_factor, numel: int) -> Tensor:
    """mmdet's reduction of the elementwise losses of ``numel`` elements, given
    as their sum (or as themselves for 'none'): see :func:`mean_denominator`."""
    return normalise(loss, reduction, mean_denominator(loss_name, reduction, avg_factor, numel))
