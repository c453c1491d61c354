"""Writes a small long-tailed detection dataset in LVIS v1 format.

25 classes, each a shape of tools/make_toy_coco.py in one of five colours
('red_square', ..., 'magenta_ring'), drawn on the same textured, cluttered
background. The training set's instances per class follow a power law over the
classes' ranks, ``max(1, round(most * rank ** -exponent))`` (the ranks are a
seeded shuffle of the classes, so no shape or colour is rare as a whole); with
the defaults (600 images, most=600, exponent=1.5) it has frequent (> 100
training images), common (11 to 100) and rare (1 to 10) classes, which LVIS's
metric reports as APf, APc and APr. The validation set draws its classes
uniformly, so every class has about 25 objects to be evaluated on.

Each category carries LVIS's ``frequency``, ``image_count`` and
``instance_count`` (of the training set, in both files, as LVIS v1 does); each
image its ``coco_url`` (which mmdet's LVISV1Dataset reads the file name from),
``neg_category_ids`` (every class it does not contain: the images are annotated
exhaustively) and an empty ``not_exhaustive_category_ids``. Deterministic from
``--seed``.

    python tools/make_toy_lvis.py                     # -> data/toy_lvis
    python tools/make_toy_lvis.py --out /tmp/lt --train 60 --val 20 --most 40

Layout (what mmdet's LVISV1Dataset reads with ``data_prefix=dict(img='')``):
    OUT/train2017/*.png, OUT/val2017/*.png, OUT/annotations/lvis_v1_{train,val}.json
"""
import argparse
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from make_toy_coco import (COLORS, SHAPES, draw_object, jittered_color,  # noqa: E402
                           make_background, place_object)

COLOR_NAMES = ('red', 'green', 'blue', 'yellow', 'magenta')  # the BGR COLORS
CLASSES = tuple(f'{color}_{shape}' for color in COLOR_NAMES for shape in SHAPES)
MAX_OBJECTS = 4  # per image
URL = 'http://images.cocodataset.org/'


def frequency(image_count: int) -> str:
    """LVIS's frequency group of a class with ``image_count`` training images."""
    return 'r' if image_count <= 10 else 'c' if image_count <= 100 else 'f'


def training_labels(rng, num_images: int, most: int, exponent: float) -> list:
    """The classes to draw in each training image: the power-law counts dealt
    out at random to images with room left (at most MAX_OBJECTS each)."""
    ranks = rng.permutation(len(CLASSES)) + 1  # ranks[c]: rank of class c
    counts = [max(1, round(most * float(r) ** -exponent)) for r in ranks]
    if sum(counts) > MAX_OBJECTS * num_images:
        raise SystemExit(f'make_toy_lvis: {sum(counts)} objects do not fit into '
                         f'{num_images} images of at most {MAX_OBJECTS}; give more '
                         '--train images or a smaller --most.')
    pool = rng.permutation(np.repeat(np.arange(len(CLASSES)), counts))
    images = [[] for _ in range(num_images)]
    for label in pool:
        open_images = [i for i, labels in enumerate(images) if len(labels) < MAX_OBJECTS]
        images[open_images[rng.integers(len(open_images))]].append(int(label))
    return images


def validation_labels(rng, num_images: int) -> list:
    """Uniformly drawn classes, 1 to MAX_OBJECTS per image, 10% empty images."""
    return [[] if rng.random() < 0.1 else
            [int(c) for c in rng.integers(len(CLASSES), size=rng.integers(1, MAX_OBJECTS + 1))]
            for _ in range(num_images)]


def write_images(out, split, labels_per_image, size, rng):
    """Draws the images; returns (images, annotations) without the LVIS
    per-class fields (an object with no room left in its image is dropped)."""
    os.makedirs(osp.join(out, split), exist_ok=True)
    images, annotations = [], []
    for image_id, labels in enumerate(labels_per_image, start=1):
        img = make_background(rng, size)
        boxes = []
        for label in labels:
            shape, color = SHAPES[label % len(SHAPES)], COLORS[label // len(SHAPES)]
            if place_object(img, rng, boxes, lambda cx, cy, side: draw_object(
                    img, shape, cx, cy, side, jittered_color(rng, color))):
                x, y, w, h = boxes[-1]
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                    bbox=boxes[-1], area=w * h,
                    segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(out, split, file_name), img)
        images.append(dict(id=image_id, coco_url=f'{URL}{split}/{file_name}', width=size,
                           height=size, not_exhaustive_category_ids=[]))
    present = {}
    for ann in annotations:
        present.setdefault(ann['image_id'], set()).add(ann['category_id'])
    for image in images:
        image['neg_category_ids'] = [c + 1 for c in range(len(CLASSES))
                                     if c + 1 not in present.get(image['id'], ())]
    return images, annotations


def categories(train_annotations) -> list:
    """LVIS categories with the training set's counts and frequency groups."""
    instances = np.bincount([a['category_id'] - 1 for a in train_annotations],
                            minlength=len(CLASSES))
    images = np.zeros(len(CLASSES), int)
    for image_id, cat in {(a['image_id'], a['category_id']) for a in train_annotations}:
        images[cat - 1] += 1
    return [dict(id=c + 1, name=name, synset=f'{name}.n.01',
                 **{'def': f'a {name.replace("_", " ")}'},  # LVIS's key is a Python keyword
                 frequency=frequency(int(images[c])), image_count=int(images[c]),
                 instance_count=int(instances[c]))
            for c, name in enumerate(CLASSES)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy_lvis')
    parser.add_argument('--train', type=int, default=600, help='training images')
    parser.add_argument('--val', type=int, default=250, help='validation images')
    parser.add_argument('--size', type=int, default=160, help='image side in pixels')
    parser.add_argument('--most', type=int, default=600,
                        help='training instances of the most frequent class')
    parser.add_argument('--exponent', type=float, default=1.5,
                        help='power-law exponent of the instances per class over rank')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.most < 1 or args.exponent <= 0:
        parser.error('--most must be >= 1 and --exponent > 0')
    rng = np.random.default_rng(args.seed)
    train = write_images(args.out, 'train2017',
                         training_labels(rng, args.train, args.most, args.exponent),
                         args.size, rng)
    val = write_images(args.out, 'val2017', validation_labels(rng, args.val), args.size, rng)
    cats = categories(train[1])
    os.makedirs(osp.join(args.out, 'annotations'), exist_ok=True)
    for split, (images, annotations) in (('train', train), ('val', val)):
        with open(osp.join(args.out, 'annotations', f'lvis_v1_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=cats), f)
        print(f'{split}: {len(images)} images, {len(annotations)} objects')
    groups = {g: [c['name'] for c in cats if c['frequency'] == g] for g in 'rcf'}
    print('training images per class: ' + ', '.join(
        f'{c["name"]}={c["image_count"]}' for c in sorted(cats, key=lambda c: -c['image_count'])))
    print(', '.join(f'{len(groups[g])} {name}' for g, name in
                    (('f', 'frequent'), ('c', 'common'), ('r', 'rare'))))


if __name__ == '__main__':
    main()
