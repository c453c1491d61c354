"""Prints the number of annotated objects per category of a COCO annotation file,
as a list to paste into ``ClassBalancedFocalLoss(class_counts=[...])``.

    python tools/class_counts.py data/coco/annotations/instances_train2017.json

Categories are in the order of their ids, which is the order of mmdet's
CocoDataset classes; crowd annotations are not counted (mmdet ignores them).
"""
import argparse
import json


def class_counts(ann_file):
    with open(ann_file) as f:
        coco = json.load(f)
    categories = sorted(coco['categories'], key=lambda c: c['id'])
    index = {c['id']: i for i, c in enumerate(categories)}
    counts = [0] * len(categories)
    for ann in coco['annotations']:
        if not ann.get('iscrowd', 0):
            counts[index[ann['category_id']]] += 1
    return [c['name'] for c in categories], counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation json')
    args = parser.parse_args()
    names, counts = class_counts(args.ann_file)
    for name, n in zip(names, counts):
        print(f'# {name}: {n}')
    print(f'class_counts={counts}')


if __name__ == '__main__':
    main()
