"""RetinaHead that sizes its classifier from our losses, with an opt-in batch loss scope."""
from typing import List

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.utils import images_to_levels
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor
from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

LOSS_SCOPES = ('level', 'batch')


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
    """RetinaHead for our sigmoid losses, with an opt-in whole-batch loss scope.

    Our losses need no ``use_sigmoid`` in the ``loss_cls`` config: the head sets
    what the loss implies (True, or False for ``ClassBalancedFocalLoss`` with
    ``loss_type='softmax'``) before it sizes its classifier.

    ``loss_scope='level'`` (default) keeps mmdet's ``AnchorHead.loss_by_feat``:
    each loss is called once per FPN level, so a GHM loss builds one histogram
    per level (its one EMA updated once per level) and the loss is the sum of
    the per-level means. This is what the authors' code does and what the
    paper's COCO numbers and loss weights (GHM-R ``loss_weight=10``) come from.
    ``loss_scope='batch'`` flattens the anchors of all levels and images and
    calls each loss once: one histogram and one mean over the batch, as the
    paper's formula reads, but about ``1 / num_levels`` of the per-level sum, so
    the published loss weights do not carry over (see the README's toy study).
    For stateless losses (focal, normalised by ``avg_factor``) both scopes give
    the same total loss.

    Args:
        loss_scope (str): 'level' (default) or 'batch'.
        *args, **kwargs: as :class:`mmdet.models.dense_heads.RetinaHead`.
    """

    def __init__(self, *args, loss_scope: str = 'level', **kwargs):
        if loss_scope not in LOSS_SCOPES:
            raise ValueError(f'GHMRetinaHead: loss_scope must be one of {LOSS_SCOPES}, '
                             f'got {loss_scope!r}.')
        if 'loss_cls' in kwargs:
            kwargs['loss_cls'] = with_use_sigmoid(kwargs['loss_cls'])
        super().__init__(*args, **kwargs)
        self.loss_scope = loss_scope
        # AnchorHead sizes its classifier from the config's use_sigmoid (default
        # False), not from the loss: a foreign sigmoid loss without it would get
        # C + 1 scores and take the background label for a class.
        if getattr(self.loss_cls, 'use_sigmoid', False) and not self.use_sigmoid_cls:
            raise ValueError(
                f'GHMRetinaHead: loss_cls {type(self.loss_cls).__name__} is a sigmoid '
                'loss but its config does not say use_sigmoid=True, so the head would '
                'predict C + 1 scores per anchor; add use_sigmoid=True to loss_cls.')

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """Losses of the whole batch; arguments and result as mmdet's
        ``AnchorHead.loss_by_feat`` (one tensor per loss instead of a list per
        level in batch scope)."""
        if self.loss_scope == 'level':
            return super().loss_by_feat(cls_scores, bbox_preds, batch_gt_instances,
                                        batch_img_metas, batch_gt_instances_ignore)
        featmap_sizes = [featmap.size()[-2:] for featmap in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(
            featmap_sizes, batch_img_metas, device=cls_scores[0].device)
        (labels, label_weights, bbox_targets, bbox_weights,
         avg_factor) = self.get_targets(
             anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
             batch_gt_instances_ignore=batch_gt_instances_ignore)

        def flat(per_level, width=None):
            # (N, C*A, H, W) maps or (N, A_l[, k]) targets -> (levels * N * A_l[, k])
            return torch.cat([t.reshape(-1, width) if width else t.reshape(-1)
                              for t in per_level])

        cls_score = flat([s.permute(0, 2, 3, 1) for s in cls_scores],
                         self.cls_out_channels)
        encode_size = self.bbox_coder.encode_size
        bbox_pred = flat([b.permute(0, 2, 3, 1) for b in bbox_preds], encode_size)
        target_dim = bbox_targets[0].size(-1)
        if self.reg_decoded_bbox:
            num_level_anchors = [anchors.size(0) for anchors in anchor_list[0]]
            level_anchors = images_to_levels(
                [cat_boxes(anchors) for anchors in anchor_list], num_level_anchors)
            anchors = flat(level_anchors, level_anchors[0].size(-1))
            bbox_pred = get_box_tensor(self.bbox_coder.decode(anchors, bbox_pred))
        loss_cls = self.loss_cls(cls_score, flat(labels), flat(label_weights),
                                 avg_factor=avg_factor)
        loss_bbox = self.loss_bbox(bbox_pred, flat(bbox_targets, target_dim),
                                   flat(bbox_weights, target_dim), avg_factor=avg_factor)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox)
