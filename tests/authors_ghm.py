"""The GHM authors' GHM-C and GHM-R, transcribed as a test oracle.

Their code: ``mmdet/models/losses/ghm_loss.py`` of the mmdetection fork that their
GHM_Detection repository pins (libuyu/mmdetection, commit be06992), which gave the
paper's COCO numbers. Written here in plain torch with their semantics:

- labels in their mmdetection's convention, 0 the background and 1..C the classes
  (column ``label - 1``), expanded to one-hot targets with the (N,) label weights
  repeated over the C columns; a valid element is one whose weight is > 0;
- edges ``i / bins`` as Python floats, the last one raised by 1e-6 (GHM-C) or set
  to 1e3 (GHM-R); an element is in bin i where ``edges[i] <= g < edges[i + 1]``;
- ``tot``: the number of valid elements (GHM-C) or the sum of the label weights
  (GHM-R), at least 1;
- per call, for each non-empty bin only: the EMA ``acc = m * acc + (1 - m) * count``
  kept in Python floats (float64) from 0, the elements' weight ``tot / acc`` (or
  ``tot / count`` without momentum), then every weight divided by ``n``, the number
  of non-empty bins of the call;
- the loss: the weighted BCE (GHM-C) or ASL1 (GHM-R) summed, over ``tot``, times
  ``loss_weight``.

Their RetinaHead calls each loss once per FPN level (``loss_single`` through
``multi_apply``), on the anchors of that level of all images: :func:`per_level`.
"""
import torch
import torch.nn.functional as F


class AuthorsGHMC:
    """Their ``GHMC`` (sigmoid only), EMA in ``acc_sum``, a list of floats."""

    def __init__(self, bins=10, momentum=0.0, loss_weight=1.0):
        self.bins = bins
        self.momentum = momentum
        self.loss_weight = loss_weight
        self.edges = [i / bins for i in range(bins + 1)]
        self.edges[-1] += 1e-6
        self.acc_sum = [0.0] * bins

    def __call__(self, pred, labels, label_weight):
        """pred (N, C) logits; labels (N,) in [0, C], 0 = background; label_weight (N,)."""
        num, classes = pred.shape
        target = torch.zeros(num, classes, dtype=torch.float32)
        fg = labels >= 1
        target[fg.nonzero()[:, 0], labels[fg] - 1] = 1.0
        weight = label_weight.float().reshape(-1, 1).expand(num, classes)
        g = (pred.sigmoid().detach() - target).abs()
        valid = weight > 0
        tot = max(float(valid.sum()), 1.0)
        weights = weigh(g, valid, tot, self.edges, self.momentum, self.acc_sum)
        loss = F.binary_cross_entropy_with_logits(pred, target, weights,
                                                  reduction='sum') / tot
        return loss * self.loss_weight


class AuthorsGHMR:
    """Their ``GHMR``: ASL1 ``sqrt(d^2 + mu^2) - mu`` of ``d = pred - target``,
    ``g = |d| / sqrt(d^2 + mu^2)``; EMA in ``acc_sum``, a list of floats."""

    def __init__(self, mu=0.02, bins=10, momentum=0.0, loss_weight=1.0):
        self.mu = mu
        self.bins = bins
        self.momentum = momentum
        self.loss_weight = loss_weight
        self.edges = [i / bins for i in range(bins + 1)]
        self.edges[-1] = 1e3
        self.acc_sum = [0.0] * bins

    def __call__(self, pred, target, label_weight):
        """pred, target (N, 4) deltas; label_weight (N, 4), 0 = ignored."""
        mu = self.mu
        diff = pred - target
        loss = torch.sqrt(diff * diff + mu * mu) - mu
        g = (diff / torch.sqrt(mu * mu + diff * diff)).abs().detach()
        valid = label_weight > 0
        tot = max(float(label_weight.float().sum()), 1.0)
        weights = weigh(g, valid, tot, self.edges, self.momentum, self.acc_sum)
        return (loss * weights).sum() / tot * self.loss_weight


def weigh(g, valid, tot, edges, momentum, acc_sum):
    """The weight of each element, updating ``acc_sum`` in place (with momentum)."""
    weights = torch.zeros_like(g)
    nonempty = 0
    for i in range(len(edges) - 1):
        in_bin = (g >= edges[i]) & (g < edges[i + 1]) & valid
        count = int(in_bin.sum())
        if count == 0:
            continue
        nonempty += 1
        if momentum > 0:
            acc_sum[i] = momentum * acc_sum[i] + (1 - momentum) * count
            weights[in_bin] = tot / acc_sum[i]
        else:
            weights[in_bin] = tot / count
    return weights / nonempty if nonempty else weights


def authors_labels(labels, num_classes):
    """Our labels (C = background, 0..C-1 the classes) in their convention
    (0 = background, 1..C)."""
    return torch.where(labels == num_classes, torch.zeros_like(labels), labels + 1)


def per_level(loss, sizes, *tensors):
    """The losses of one call per FPN level, as their head makes them: the
    anchors split along dim 0 into levels of ``sizes``."""
    parts = [t.split(sizes) for t in tensors]
    return [loss(*level) for level in zip(*parts)]
