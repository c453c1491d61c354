"""Prints the number of annotated objects per category of a COCO annotation file,
as a list to paste into ``ClassBalancedFocalLoss(class_counts=[...])``.

    python tools/class_counts.py data/coco/annotations/instances_train2017.json
    python tools/class_counts.py ANN.json --config my_config.py
    python tools/class_counts.py ANN.json --classes person car

The list is in the order of the labels the model trains with, which is how
mmdet's CocoDataset numbers the classes: the categories in the order of the
annotation file, restricted to the classes of ``--classes`` or of the config's
training dataset (its ``metainfo.classes``, else its dataset type's own). Note
that mmdet 3.3 keeps that file order even when ``metainfo.classes`` lists the
classes in another one (the tool says so). Crowd annotations are not counted
(mmdet ignores them); ClassCountsHook counts the same, from the dataset.
"""
import argparse
import json


def config_classes(config_file):
    """The classes of a config's training dataset, through dataset wrappers."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    dataset = Config.fromfile(config_file).train_dataloader.dataset
    while 'dataset' in dataset or 'datasets' in dataset:
        dataset = dataset['dataset'] if 'dataset' in dataset else dataset['datasets'][0]
    metainfo = dataset.get('metainfo') or DATASETS.get(dataset['type']).METAINFO
    return tuple(metainfo['classes'])


def class_counts(ann_file, classes=None):
    """(class names, instances per class) in mmdet's label order: the categories
    in file order, restricted to ``classes`` (names) when given."""
    with open(ann_file) as f:
        coco = json.load(f)
    names = [c['name'] for c in coco['categories']]
    if classes is not None:
        missing = [name for name in classes if name not in names]
        if missing:
            raise SystemExit(f'class_counts: {", ".join(missing)} not among the categories '
                             f'of {ann_file}; check the class names (or the config).')
    categories = [c for c in coco['categories'] if classes is None or c['name'] in classes]
    index = {c['id']: i for i, c in enumerate(categories)}
    counts = [0] * len(categories)
    for ann in coco['annotations']:
        if not ann.get('iscrowd', 0) and ann['category_id'] in index:
            counts[index[ann['category_id']]] += 1
    return [c['name'] for c in categories], counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation json')
    order = parser.add_mutually_exclusive_group()
    order.add_argument('--config', help="count only this config's training classes")
    order.add_argument('--classes', nargs='+', help='count only these classes')
    args = parser.parse_args()
    classes = config_classes(args.config) if args.config else args.classes
    names, counts = class_counts(args.ann_file, classes)
    if classes is not None and list(classes) != names:
        print(f'# mmdet numbers these classes in the annotation file\'s order, not in '
              f'the one given: label i is the i-th of {names}')
    for name, n in zip(names, counts):
        print(f'# {name}: {n}')
    print(f'class_counts={counts}')


if __name__ == '__main__':
    main()
