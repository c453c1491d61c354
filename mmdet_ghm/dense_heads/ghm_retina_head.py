"""RetinaHead that sizes its classifier from our losses."""
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS


def with_use_sigmoid(loss_cls: dict) -> dict:
    """``loss_cls`` with the ``use_sigmoid`` that our losses imply, where the
    config does not say: AnchorHead reads it before it builds the loss to size
    its classifier (C or C + 1 scores per anchor)."""
    loss_type = loss_cls.get('type')
    loss_class = MODELS.get(loss_type) if isinstance(loss_type, str) else loss_type
    if 'use_sigmoid' in loss_cls or not hasattr(loss_class, 'config_uses_sigmoid'):
        return loss_cls
    return dict(loss_cls, use_sigmoid=loss_class.config_uses_sigmoid(loss_cls))


@MODELS.register_module()
class GHMRetinaHead(RetinaHead):
    """mmdet's RetinaHead that needs no ``use_sigmoid`` for our losses.

    The losses are computed exactly as in RetinaHead: each loss is called once
    per FPN level, so a GHM loss builds one histogram per level (its one EMA
    updated once per level) and the loss is the sum of the per-level means.
    This is what the authors' code does and what the paper's COCO numbers and
    loss weights (GHM-R ``loss_weight=10``) come from.

    mmdet's heads size their classifier from ``use_sigmoid`` in the config
    (default False) before they build the loss. This head sets what our loss
    implies (True, or False for ``ClassBalancedFocalLoss`` with
    ``loss_type='softmax'``), and raises for a foreign sigmoid loss whose config
    does not say ``use_sigmoid=True``, where RetinaHead would silently predict
    C + 1 scores and take the background label for a class.

    Args:
        *args, **kwargs: as :class:`mmdet.models.dense_heads.RetinaHead`.
    """

    def __init__(self, *args, **kwargs):
        if 'loss_scope' in kwargs:  # configs written for mmdet-ghm before 0.2
            raise TypeError(
                'GHMRetinaHead: loss_scope was removed; the head always calls its '
                'losses once per FPN level, as the paper\'s code does. Delete '
                f'loss_scope={kwargs["loss_scope"]!r} from the config.')
        if 'loss_cls' in kwargs:
            kwargs['loss_cls'] = with_use_sigmoid(kwargs['loss_cls'])
        super().__init__(*args, **kwargs)
        if getattr(self.loss_cls, 'use_sigmoid', False) and not self.use_sigmoid_cls:
            raise ValueError(
                f'GHMRetinaHead: loss_cls {type(self.loss_cls).__name__} is a sigmoid '
                'loss but its config does not say use_sigmoid=True, so the head would '
                'predict C + 1 scores per anchor; add use_sigmoid=True to loss_cls.')
