"""How hard each loss term of a one-stage detector pulls on the features it shares.

    python tools/loss_gradients.py CONFIG [CONFIG ...] --checkpoint CKPT [--batches 5]

Builds the model of each config, loads the same checkpoint's weights into each (so
only the losses differ), runs the first ``--batches`` batches of the config's
training data through the head in training mode, and prints per loss term its value
and the norm of its gradient with respect to the neck's outputs (all levels
together), averaged over the batches. The backbone and neck learn from the sum of
these gradients: the ratio of the classification term to the box terms says which
one they mostly follow. Swapping a head's own classification loss for GHM-C changes
that ratio by an order of magnitude (docs/detectors.md), and ``loss_weight`` is what
sets it back.

Every config starts from the same random state before its data is read, so each sees
the same images and flips. The losses' own state that the checkpoint lacks (GHM's
EMA when it was trained with another loss) starts fresh and is listed; any other
missing or unexpected weight is an error.
"""
import argparse
import os.path as osp

import torch


def build_model(cfg):
    """The config's detector, in training mode, with GHM's statistics allowed to
    update as in a training run."""
    from mmdet.registry import MODELS

    from mmdet_ghm.losses import attach_sync
    model = MODELS.build(cfg.model)
    if not hasattr(model, 'bbox_head') or not hasattr(model, 'extract_feat'):
        raise SystemExit(f'loss_gradients: {type(model).__name__} is not a one-stage '
                         'detector (no bbox_head); the tool measures the losses of a '
                         'dense head.')
    attach_sync(model)
    return model.train()


def load_weights(model, state_dict, config):
    """Loads ``state_dict``; returns the loss-state keys the checkpoint lacked."""
    loss_prefixes = tuple(f'{name}.' for name, _ in model.named_modules()
                          if name.rsplit('.', 1)[-1].startswith('loss'))
    own = model.state_dict()
    other_shape = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state_dict and not k.startswith(loss_prefixes)]
    unexpected = [k for k in state_dict if k not in own and not k.startswith(loss_prefixes)]
    if other_shape or missing or unexpected:
        raise SystemExit(f'loss_gradients: the checkpoint does not fit the model of {config}: '
                         f'other shape {other_shape[:3]}, missing {missing[:3]}, unexpected '
                         f'{unexpected[:3]} ({len(other_shape)}, {len(missing)} and '
                         f'{len(unexpected)} in all). Give a checkpoint of the same '
                         'architecture.')
    result = model.load_state_dict(state_dict, strict=False)
    return [k for k in result.missing_keys if k.startswith(loss_prefixes)]


def batches(cfg, count, seed):
    """The first ``count`` training batches of the config, after seeding."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import set_random_seed
    set_random_seed(seed)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    size = cfg.train_dataloader.batch_size
    if len(dataset) < count * size:
        raise SystemExit(f'loss_gradients: {count} batches of {size} need {count * size} '
                         f'training images; the dataset has {len(dataset)}. Lower --batches.')
    return [pseudo_collate([dataset[i] for i in range(b * size, (b + 1) * size)])
            for b in range(count)]


def loss_gradients(model, data_batches):
    """``{loss term: (mean value, mean gradient norm)}`` over the batches: the norm of
    d(term)/d(neck outputs), all levels together."""
    sums = {}
    for batch in data_batches:
        data = model.data_preprocessor(batch, True)
        with torch.no_grad():
            feats = model.extract_feat(data['inputs'])
        feats = tuple(f.requires_grad_() for f in feats)
        losses = model.bbox_head.loss(feats, data['data_samples'])
        for name, value in losses.items():
            if not name.startswith('loss'):
                continue
            total = sum(value) if isinstance(value, (list, tuple)) else value
            norm = torch.zeros(())
            if total.requires_grad:
                grads = torch.autograd.grad(total, feats, retain_graph=True,
                                            allow_unused=True)
                norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))
            value_sum, norm_sum = sums.get(name, (0.0, 0.0))
            sums[name] = (value_sum + total.detach().float(), norm_sum + norm)
    return {name: (float(v) / len(data_batches), float(n) / len(data_batches))
            for name, (v, n) in sums.items()}


def measure(config, state_dict, count=5, seed=0, cfg_options=None):
    """(per-term value and gradient norm, loss-state keys that started fresh)."""
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    data_batches = batches(cfg, count, seed)
    model = build_model(cfg)
    fresh = load_weights(model, state_dict, config)
    return loss_gradients(model, data_batches), fresh


def main():
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs of the same architecture')
    parser.add_argument('--checkpoint', required=True, help='weights for every config')
    parser.add_argument('--batches', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides for every config')
    args = parser.parse_args()
    # mmengine's checkpoints hold numpy objects: only load checkpoints you trust
    checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    state_dict = checkpoint.get('state_dict', checkpoint)
    print(f'Weights of {args.checkpoint}; {args.batches} training batches, seed {args.seed}.')
    print('| config | loss term | value | gradient norm on the neck outputs | share |')
    print('|---|---|---:|---:|---:|')
    for config in args.configs:
        terms, fresh = measure(config, state_dict, args.batches, args.seed, args.cfg_options)
        total = sum(norm for _, norm in terms.values()) or 1.0
        for name, (value, norm) in terms.items():
            print(f'| {osp.basename(config)} | {name} | {value:.4g} | {norm:.3g} | '
                  f'{norm / total:.2f} |')
        if fresh:
            print(f'(loss state not in the checkpoint, started fresh: {", ".join(fresh)})')


if __name__ == '__main__':
    main()
