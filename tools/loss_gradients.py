"""How hard each loss term of a one-stage detector pulls on the features it shares.

    python tools/loss_gradients.py CONFIG [CONFIG ...] --checkpoint CKPT [--batches 5]

Builds the model of each config, loads the same checkpoint's weights into each (so
only the losses differ), draws ``--batches`` training batches as the config's
sampler does with ``--seed`` (the same images and random flips for every config),
runs them through the head in training mode and prints, per loss term (each key of
the head's loss dict that contains 'loss', summed as mmengine sums it), its value and
the norm of its gradient with respect to the head's inputs (the neck's outputs, each
level taken as an input of its own), averaged over the batches. The backbone and neck
learn from the sum of these gradients, so the norms say which term they mostly
follow; ``share`` is each norm over the sum of the config's norms (norms do not add:
it ranks, it does not split). Replacing a head's classification loss changes these
shares, and ``loss_weight`` is what sets them back (docs/detectors.md).

The losses' state (GHM's EMA histograms, EFL's gradient ratios) updates batch by
batch as in training. State that the checkpoint lacks (GHM's EMA when it was trained
with another loss) starts fresh and first sees ``--warmup-batches`` batches that are
not measured; it is listed, and so is loss state of the checkpoint that the config
does not use. Any other missing, unexpected or reshaped weight is an error.
"""
import argparse
import copy
import os.path as osp
from collections import OrderedDict
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from runner import allow_resume_on_new_torch  # noqa: E402


def build_model(cfg):
    """The config's one-stage detector, in training mode, its losses' statistics
    updating as in a training run."""
    from mmdet.models.detectors import (KnowledgeDistillationSingleStageDetector,
                                        SingleStageDetector)
    from mmdet.registry import MODELS

    from mmdet_ghm.losses import attach_sync
    model = MODELS.build(cfg.model)
    if (not isinstance(model, SingleStageDetector)
            or isinstance(model, KnowledgeDistillationSingleStageDetector)):
        raise SystemExit(f'loss_gradients: {type(model).__name__} is not a one-stage '
                         'detector (mmdet SingleStageDetector, no teacher); the tool '
                         'measures the losses of a dense head.')
    attach_sync(model)
    return model.train()


def load_weights(model, state_dict, config):
    """Loads ``state_dict``; returns (loss state the checkpoint lacked or held in
    another shape, which starts fresh; loss state of the checkpoint not used)."""
    loss_prefixes = tuple(f'{name}.' for name, _ in model.named_modules()
                          if name.rsplit('.', 1)[-1].startswith('loss'))
    own = model.state_dict()
    other_shape = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [[k for k in keys if not k.startswith(loss_prefixes)]
             for keys in (other_shape, missing, unexpected)]
    if any(wrong):
        raise SystemExit(f'loss_gradients: the checkpoint does not fit the model of {config}: '
                         f'other shape {wrong[0][:3]}, missing {wrong[1][:3]}, unexpected '
                         f'{wrong[2][:3]} ({", ".join(str(len(k)) for k in wrong)} in all). '
                         'Give a checkpoint of the same architecture.')
    # what is left is loss state; the losses' own load hooks (mmdet's GHMC/GHMR keys)
    # decide what of it loads. The checkpoint's module versions go along: without
    # them mmdet's anchor-free heads rename every '<head>.*cls.*' key, loss state too
    loadable = OrderedDict((k, v) for k, v in state_dict.items() if k not in other_shape)
    loadable._metadata = getattr(state_dict, '_metadata', OrderedDict())
    result = model.load_state_dict(loadable, strict=False)
    return other_shape + result.missing_keys, result.unexpected_keys


def batches(cfg, count, seed):
    """``count`` training batches as mmengine's Runner loads them (the config's
    sampler seeded with ``seed``, its batch sampler and collate_fn), in this process."""
    from mmengine.runner import Runner, set_random_seed
    set_random_seed(seed)
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    # in this process, so the pipeline's random flips come from the seeded state
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    size = loader_cfg.batch_size
    if len(loader.dataset) < count * size:
        raise SystemExit(f'loss_gradients: {count} batches of {size} need {count * size} '
                         f'training images; the dataset has {len(loader.dataset)}. Lower '
                         '--batches.')
    drawn = iter(loader)
    return [next(drawn) for _ in range(count)]


def loss_terms(losses):
    """The terms mmengine's ``parse_losses`` adds up, each as a scalar."""
    terms = {}
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        if isinstance(value, torch.Tensor):
            terms[name] = value.mean()
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, torch.Tensor) for v in value):
            terms[name] = sum(v.mean() for v in value)
        else:
            raise SystemExit(f'loss_gradients: the head returned {name!r} as '
                             f'{type(value).__name__}, not a tensor or a list of tensors.')
    if not terms:
        raise SystemExit(f'loss_gradients: the head returned no loss term '
                         f'(keys: {", ".join(losses)}).')
    return terms


def head_loss(model, batch):
    """(the head's inputs as leaves that take gradients, its loss terms)."""
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
    feats = tuple(f.requires_grad_() for f in feats)
    return feats, loss_terms(model.bbox_head.loss(feats, data['data_samples']))


def loss_gradients(model, data_batches, warmup=()):
    """``{loss term: (mean value, mean gradient norm)}`` over ``data_batches``: the
    norm of d(term)/d(head inputs), all levels together. The losses' statistics are
    synced after each batch, as SyncStatisticsHook does in training; the ``warmup``
    batches only update them."""
    from mmdet_ghm.losses import sync_statistics
    for batch in warmup:
        head_loss(model, batch)
        sync_statistics(model)
    sums = {}
    for batch in data_batches:
        feats, terms = head_loss(model, batch)
        for name, total in terms.items():
            norm = torch.zeros(())
            if total.requires_grad:
                grads = torch.autograd.grad(total, feats, retain_graph=True,
                                            allow_unused=True)
                norm = torch.sqrt(sum(((g.float() ** 2).sum() for g in grads
                                       if g is not None), torch.zeros(())))
            value_sum, norm_sum = sums.get(name, (0.0, 0.0))
            sums[name] = (value_sum + total.detach().float(), norm_sum + norm)
        sync_statistics(model)
    return {name: (float(v) / len(data_batches), float(n) / len(data_batches))
            for name, (v, n) in sums.items()}


def measure(config, state_dict, count=5, seed=0, cfg_options=None, warmup=5):
    """(per-term value and gradient norm, loss state started fresh, loss state of
    the checkpoint not used). Fresh state first sees ``warmup`` other batches."""
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = build_model(cfg)
    fresh, unused = load_weights(model, state_dict, config)
    # the measured batches first, so every config measures the same ones
    drawn = batches(cfg, count + (warmup if fresh else 0), seed)
    terms = loss_gradients(model, drawn[:count], drawn[count:])
    return terms, fresh, unused


def main():
    from mmengine.config import DictAction
    from mmengine.runner import CheckpointLoader
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs of the same architecture')
    parser.add_argument('--checkpoint', required=True,
                        help='weights for every config (a path or a URL mmengine loads)')
    parser.add_argument('--batches', type=int, default=5, help='batches measured')
    parser.add_argument('--warmup-batches', type=int, default=5,
                        help='batches that only update loss state the checkpoint lacks')
    parser.add_argument('--seed', type=int, default=0,
                        help='draws the images and flips, the same for every config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides for every config')
    args = parser.parse_args()
    if args.batches < 1 or args.warmup_batches < 0:
        parser.error('--batches must be at least 1 and --warmup-batches at least 0')
    allow_resume_on_new_torch()  # mmengine checkpoints hold numpy objects
    checkpoint = CheckpointLoader.load_checkpoint(args.checkpoint, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    print(f'Weights of {args.checkpoint}; {args.batches} training batches, seed '
          f'{args.seed}; share: a norm over the sum of the config\'s norms.')
    print('| config | loss term | value | gradient norm on the head inputs | share |')
    print('|---|---|---:|---:|---:|')
    for config in args.configs:
        terms, fresh, unused = measure(config, state_dict, args.batches, args.seed,
                                       args.cfg_options, args.warmup_batches)
        total = sum(norm for _, norm in terms.values()) or 1.0
        for name, (value, norm) in terms.items():
            print(f'| {osp.basename(config)} | {name} | {value:.4g} | {norm:.3g} | '
                  f'{norm / total:.2f} |')
        if fresh:
            print(f'(loss state not in the checkpoint, started fresh and warmed up on '
                  f'{args.warmup_batches} other batches: {", ".join(fresh)})')
        if unused:
            print(f'(loss state of the checkpoint this config does not use: '
                  f'{", ".join(unused)})')


if __name__ == '__main__':
    main()
