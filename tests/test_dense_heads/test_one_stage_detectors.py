"""Our losses in mmdet 3.3's one-stage detectors.

Each detector is built from its own ``mmdet::`` config, shrunk to the toy data
(5 classes, two 128 px images with three boxes each, no pretrained weights),
with ``loss_cls`` set to each of our classification losses (and ``loss_bbox``
to GHMRLoss where the head regresses deltas), and trained for two SGD
iterations. A cell passes when our loss was called and every loss is finite;
the README's table lists the results.
"""
import pytest
import torch
from mmdet.utils import register_all_modules

import mmdet_ghm  # noqa: F401  (registration)
from mmdet_ghm.losses import attach_sync, sync_statistics

from ..helpers import DETECTOR_LOSSES, DETECTORS, build_detector, detector_batch

register_all_modules()

# PAA scores each object's candidate anchors by their loss_cls (reduction 'none')
# and fits a Gaussian mixture to the scores; GHM-C's density weights of the
# candidates alone are no score, and we refuse the pair when the model is built
# (whether scikit-learn's fit fails on its scores depends on the machine).
BUILD_ERRORS = {('PAA', 'GHMCLoss'): (ValueError, 'GHMCLoss can not be the loss_cls of PAAHead')}
CELLS = [(det, loss, False) for det in DETECTORS for loss in DETECTOR_LOSSES] + [
    (det, 'GHMCLoss', True) for det, (_, deltas, _) in DETECTORS.items() if deltas]


def train_two_iterations(model):
    """Calls of our losses, and the losses of each iteration, with our losses'
    statistics folded in after each iteration as SyncStatisticsHook does."""
    calls = []
    attach_sync(model)
    head = model.bbox_head
    for loss in (head.loss_cls, getattr(head, 'loss_bbox', None)):
        if type(loss).__module__.startswith('mmdet_ghm'):
            loss.register_forward_hook(lambda m, *_: calls.append(type(m).__name__))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    history = []
    for _ in range(2):
        data = model.data_preprocessor(detector_batch(), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        values = [v for k, vs in losses.items() if 'loss' in k
                  for v in (vs if isinstance(vs, list) else [vs])]
        optimizer.zero_grad()
        sum(v.sum() for v in values).backward()
        # as the toy configs and most of mmdet's clip: TOOD and RTMDet divide a
        # sum over every element by their alignment metrics, which from a random
        # start gives gradients of norm 1e3 and saturates TOOD's probabilities
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=35)
        optimizer.step()
        sync_statistics(model)
        history.append(values)
    return calls, history


@pytest.mark.parametrize('detector, loss_cls, ghmr', CELLS)
def test_our_losses_in_one_stage_detectors(detector, loss_cls, ghmr):
    expected = DETECTORS[detector][2]
    if (detector, loss_cls) in BUILD_ERRORS:
        error, message = BUILD_ERRORS[detector, loss_cls]
        with pytest.raises(error, match=message):
            build_detector(detector, loss_cls, ghmr)
        return
    model = build_detector(detector, loss_cls, ghmr)
    calls, history = train_two_iterations(model)
    for values in history:
        assert all(torch.isfinite(v).all() for v in values), values
    called = set(calls)
    if expected == 'works':
        assert type(model.bbox_head.loss_cls).__name__ in called
    else:  # the head never calls loss_cls
        assert type(model.bbox_head.loss_cls).__name__ not in called
    if ghmr:
        assert 'GHMRLoss' in called
