"""Fills ClassBalancedFocalLoss's class counts from the training annotations."""
from typing import List

from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmdet.registry import HOOKS

from ..losses import ClassBalancedFocalLoss


def annotated_datasets(dataset) -> list:
    """The datasets that hold the annotations behind ``dataset``: itself, or what
    its wrappers wrap (RepeatDataset, ClassBalancedDataset: ``.dataset``;
    ConcatDataset: each of ``.datasets``), so a repeated image counts once."""
    if hasattr(dataset, 'datasets'):
        return [base for inner in dataset.datasets for base in annotated_datasets(inner)]
    if hasattr(dataset, 'dataset'):
        return annotated_datasets(dataset.dataset)
    return [dataset]


def dataset_class_counts(dataset, num_classes: int, per_image: bool = False) -> List[int]:
    """Non-ignored instances per class in an mmdet dataset, each annotation once
    (through any wrapper), indexed by the labels the model trains with
    (``bbox_label``); with ``per_image``, the images holding the class instead
    (LVIS's frequency groups count images)."""
    counts = [0] * num_classes
    for base in annotated_datasets(dataset):
        for i in range(len(base)):
            labels = []
            for instance in base.get_data_info(i).get('instances', []):
                if not instance.get('ignore_flag', 0):
                    label = instance['bbox_label']
                    if not 0 <= label < num_classes:
                        raise ValueError(f'ClassCountsHook: instance label {label} of '
                                         f'image {i} is outside [0, {num_classes}).')
                    labels.append(label)
            for label in (set(labels) if per_image else labels):
                counts[label] += 1
    return counts


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Gives every ``ClassBalancedFocalLoss`` without ``class_counts`` the
    number of training instances per class, when training starts.

    Runs in ``before_run``, before a checkpoint is resumed, so the class weights
    exist as a buffer when the checkpoint's copy is loaded. Rank 0 counts and
    broadcasts, so every rank uses the same weights; the counts are logged.
    Losses whose config lists ``class_counts`` are left alone, and so is a run
    that does not train (tools/test.py: the weights come from the checkpoint).
    Each annotation counts once: under a RepeatDataset or a ClassBalancedDataset
    (repeat-factor sampling) the wrapped dataset is counted, not the repeats.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        # Runner.train() has built its loop by now; test() and val() have not,
        # and building it would need the training data.
        if not isinstance(runner._train_loop, BaseLoop):
            return
        losses = [m for m in runner.model.modules()
                  if isinstance(m, ClassBalancedFocalLoss) and m.class_weight is None]
        if not losses:
            return
        dataset = runner.train_dataloader.dataset
        classes = dataset.metainfo['classes']
        # rank 0 counts, the others take its list: one set of weights everywhere
        counts = [dataset_class_counts(dataset, len(classes)) if get_rank() == 0 else None]
        broadcast_object_list(counts, src=0)
        counts = counts[0]
        runner.logger.info('ClassCountsHook: training instances per class: ' + ', '.join(
            f'{name}={n}' for name, n in zip(classes, counts)))
        device = next(runner.model.parameters()).device
        for loss in losses:
            loss.set_class_counts(counts, device=device)
