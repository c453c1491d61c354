"""Writes a small COCO-format detection dataset of drawn shapes.

Five classes with a long-tailed frequency (the rarest 20x rarer than the most
common), objects from 8 to 64 pixels, unannotated clutter (lines, specks, gray
blobs) on a textured background, and about 10% of images with no object.
Deterministic from ``--seed``: the same command writes the same files.

    python tools/make_toy_coco.py                       # -> data/toy_coco
    python tools/make_toy_coco.py --out /tmp/toy --train 40 --val 10
    python tools/make_toy_coco.py --out data/toy_coco_noise20 --label-noise 0.2

``--label-noise P`` writes the same images, the same clean validation set, and
training annotations in which each box independently has, with probability P,
a wrong class (drawn uniformly from the other classes), and, with probability
P, each edge moved by up to 30% of the box's side (a jittered box); the
noise has its own random stream, so the images do not change with P.

Layout (what mmdet's CocoDataset reads):
    OUT/train/*.png, OUT/val/*.png, OUT/annotations/instances_{train,val}.json
"""
import argparse
import json
import os

import cv2
import numpy as np

CLASSES = ('square', 'disk', 'triangle', 'cross', 'ring')
FREQUENCY = (40, 20, 10, 5, 2)
# base BGR colour of each class; jittered per object, so shape matters too
COLORS = ((40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 200, 220), (200, 40, 200))


SHAPES = CLASSES  # each class is a shape here; tools/make_toy_lvis.py pairs them with colours


def draw_object(img, shape, cx, cy, size, color):
    """Draws one object of a shape of ``SHAPES`` and returns its COCO box
    [x, y, w, h]."""
    half = size // 2
    x0, y0, x1, y1 = cx - half, cy - half, cx + half, cy + half
    if shape == 'square':
        cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
    elif shape == 'disk':
        cv2.circle(img, (cx, cy), half, color, -1, lineType=cv2.LINE_AA)
    elif shape == 'triangle':
        pts = np.array([[cx, y0], [x1, y1], [x0, y1]], np.int32)
        cv2.fillPoly(img, [pts], color, lineType=cv2.LINE_AA)
    elif shape == 'cross':
        bar = max(size // 4, 2)
        cv2.rectangle(img, (cx - bar // 2, y0), (cx + bar // 2, y1), color, -1)
        cv2.rectangle(img, (x0, cy - bar // 2), (x1, cy + bar // 2), color, -1)
    else:  # ring
        cv2.circle(img, (cx, cy), half, color, max(size // 6, 2), lineType=cv2.LINE_AA)
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def make_background(rng, size):
    """A textured gray image with unannotated clutter (lines, specks, blobs)."""
    base = rng.integers(90, 170)
    ramp = np.linspace(-20, 20, size)[None, :] * rng.choice([-1, 1])
    img = np.clip(base + ramp + rng.normal(0, 8, (size, size)), 0, 255)
    img = np.repeat(img[..., None], 3, axis=2).astype(np.uint8)
    for _ in range(rng.integers(2, 7)):  # clutter: not annotated
        gray = int(rng.integers(40, 220))
        kind = rng.integers(3)
        p = rng.integers(0, size, 2)
        if kind == 0:
            q = rng.integers(0, size, 2)
            cv2.line(img, tuple(map(int, p)), tuple(map(int, q)), (gray, ) * 3, 1)
        elif kind == 1:
            cv2.circle(img, tuple(map(int, p)), int(rng.integers(1, 3)), (gray, ) * 3, -1)
        else:
            axes = (int(rng.integers(3, 12)), int(rng.integers(3, 12)))
            cv2.ellipse(img, tuple(map(int, p)), axes, float(rng.integers(180)), 0, 360,
                        (gray, ) * 3, -1)
    return img


def place_object(img, rng, boxes, draw):
    """Finds a spot (8 to 64 px, IoU < 0.2 with ``boxes``) for one object and
    calls ``draw(cx, cy, side)``, which draws it and returns its box; that box is
    appended to ``boxes``. Gives up after 20 spots (returns False)."""
    size = img.shape[0]
    for _attempt in range(20):
        obj = int(np.exp(rng.uniform(np.log(8), np.log(64))))
        cx, cy = (int(v) for v in rng.integers(obj // 2 + 1, size - obj // 2 - 1, 2))
        half = obj // 2
        box = [cx - half, cy - half, 2 * half + 1, 2 * half + 1]
        if all(iou(box, b) < 0.2 for b in boxes):
            boxes.append(draw(cx, cy, obj))
            return True
    return False


def jittered_color(rng, color):
    jitter = rng.integers(-30, 31, 3)
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(color, jitter))


def make_image(rng, size):
    img = make_background(rng, size)
    boxes, labels = [], []
    num_objects = 0 if rng.random() < 0.1 else int(rng.integers(1, 5))
    probs = np.array(FREQUENCY, float) / sum(FREQUENCY)
    for _ in range(num_objects):
        cls = int(rng.choice(len(CLASSES), p=probs))
        if place_object(img, rng, boxes, lambda cx, cy, side: draw_object(
                img, SHAPES[cls], cx, cy, side, jittered_color(rng, COLORS[cls]))):
            labels.append(cls)
    return img, boxes, labels


def add_label_noise(annotations, share, size, rng):
    """Relabels and jitters a ``share`` of the boxes (independently), in place.

    Returns:
        tuple[int, int]: the numbers of relabelled and of jittered boxes.
    """
    relabelled = jittered = 0
    for ann in annotations:
        if rng.random() < share:
            others = [c for c in range(1, len(CLASSES) + 1) if c != ann['category_id']]
            ann['category_id'] = int(rng.choice(others))
            relabelled += 1
        if rng.random() < share:
            x, y, w, h = ann['bbox']
            x0, x1 = np.clip([x, x + w] + rng.uniform(-0.3, 0.3, 2) * w, 0, size)
            y0, y1 = np.clip([y, y + h] + rng.uniform(-0.3, 0.3, 2) * h, 0, size)
            x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
            ann['bbox'] = [float(x0), float(y0), float(max(x1 - x0, 1.0)),
                           float(max(y1 - y0, 1.0))]
            ann['area'] = ann['bbox'][2] * ann['bbox'][3]
            jittered += 1
    return relabelled, jittered


def write_split(out, split, num_images, size, rng, label_noise=0.0, noise_rng=None):
    os.makedirs(os.path.join(out, split), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        img, boxes, labels = make_image(rng, size)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(os.path.join(out, split, file_name), img)
        images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        for box, label in zip(boxes, labels):
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=label + 1, bbox=box,
                                    area=box[2] * box[3], iscrowd=0))
    if label_noise:
        relabelled, jittered = add_label_noise(annotations, label_noise, size, noise_rng)
        print(f'{split}: label noise {label_noise}: {relabelled} boxes relabelled, '
              f'{jittered} jittered')
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    os.makedirs(os.path.join(out, 'annotations'), exist_ok=True)
    with open(os.path.join(out, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return annotations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy_coco')
    parser.add_argument('--train', type=int, default=600, help='training images')
    parser.add_argument('--val', type=int, default=150, help='validation images')
    parser.add_argument('--size', type=int, default=160, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--label-noise', type=float, default=0.0, metavar='P',
                        help='share of training boxes relabelled and (independently) '
                        'jittered; the validation set stays clean')
    args = parser.parse_args()
    if not 0 <= args.label_noise <= 1:
        parser.error(f'--label-noise must be a share in [0, 1], got {args.label_noise}')
    rng = np.random.default_rng(args.seed)
    noise_rng = np.random.default_rng([args.seed, 1])
    for split, num in (('train', args.train), ('val', args.val)):
        noise = args.label_noise if split == 'train' else 0.0
        anns = write_split(args.out, split, num, args.size, rng, noise, noise_rng)
        counts = np.bincount([a['category_id'] - 1 for a in anns], minlength=len(CLASSES))
        print(f'{split}: {num} images, {len(anns)} objects, per class '
              + ', '.join(f'{c}={n}' for c, n in zip(CLASSES, counts)))


if __name__ == '__main__':
    main()
