"""Every config in configs/ loads and builds its model on the CPU, and so does the
README's first config snippet pasted into a config of the user's own."""
import glob
import os.path as osp
import re

import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                      recursive=True) if '_base_' not in p)


def test_every_variant_is_there():
    names = {osp.relpath(p, osp.join(ROOT, 'configs')) for p in CONFIGS}
    assert {'ghm/retinanet_r50_fpn_ghm-1x_coco.py',
            'focal/retinanet_r50_fpn_focal-1x_coco.py',
            'cb_focal/retinanet_r50_fpn_cb-focal-1x_coco.py',
            'voc/retinanet_r50_fpn_ghm-1x_voc0712.py'} <= names
    assert {f'toy/retinanet_r18_fpn_{v}-1500it_toy.py' for v in (
        'ghm', 'focal', 'cb-focal', 'mmdet-ghm', 'mmdet-focal', 'ghmc-l1', 'focal-ghmr')} == {
            n for n in names if n.startswith('toy/')}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_builds(path):
    register_all_modules()
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['mmdet_ghm']
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    assert head.cls_out_channels == head.num_classes  # sigmoid classification
    if '_ghm-' in osp.basename(path):  # GHM-C + GHM-R as the paper
        assert type(head).__name__ == 'GHMRetinaHead'
        assert type(head.loss_cls).__name__ == 'GHMCLoss'
        assert (head.loss_cls.density.bins, head.loss_cls.density.momentum) == (30, 0.75)
        assert type(head.loss_bbox).__name__ == 'GHMRLoss'
        assert cfg.optim_wrapper.clip_grad.max_norm == 35
    ablation = {'retinanet_r18_fpn_ghmc-l1-1500it_toy.py': ('GHMCLoss', 'L1Loss'),
                'retinanet_r18_fpn_focal-ghmr-1500it_toy.py': ('SigmoidFocalLoss', 'GHMRLoss')}
    if osp.basename(path) in ablation:  # one of the two GHM losses swapped
        assert (type(head.loss_cls).__name__,
                type(head.loss_bbox).__name__) == ablation[osp.basename(path)]


def readme_config_snippet() -> str:
    """The first config in the README: the first python block with `_base_`."""
    with open(osp.join(ROOT, 'README.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    return next(b for b in blocks if b.startswith('_base_'))


def build_user_config(tmp_path, text):
    register_all_modules()
    path = tmp_path / 'my_retinanet.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # nothing is downloaded
    return MODELS.build(cfg.model)


def test_readme_snippet_builds_in_a_retinanet_config(tmp_path):
    snippet = readme_config_snippet()
    assert "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py" in snippet
    head = build_user_config(tmp_path, snippet).bbox_head
    assert type(head.loss_cls).__name__ == 'GHMCLoss'
    assert type(head.loss_bbox).__name__ == 'GHMRLoss'
    assert head.cls_out_channels == head.num_classes


def test_inherited_loss_keys_get_our_error(tmp_path):
    merged = readme_config_snippet().replace('_delete_=True, ', '')
    assert '_delete_' not in merged
    with pytest.raises(TypeError, match=r'GHMCLoss got keys it does not take: alpha, '
                       r'gamma\..*add _delete_=True'):
        build_user_config(tmp_path, merged)


@pytest.mark.parametrize('loss', ['GHMCLoss', 'GHMRLoss', 'SigmoidFocalLoss',
                                  'ClassBalancedFocalLoss'])
def test_every_loss_names_keys_it_does_not_take(loss):
    import mmdet_ghm  # noqa: F401  (registration)
    with pytest.raises(TypeError, match=rf'{loss} got keys it does not take: '
                       r'not_a_key\..*_delete_=True.*takes: .*loss_weight'):
        MODELS.build(dict(type=loss, not_a_key=1))


# the results of each toy folder's configs, keyed by variant
TOY_RESULTS = dict(toy='toy_results.json', toy_lvis='toy_lvis_results.json',
                   toy_detectors='toy_detectors_results.json')


@pytest.mark.parametrize('folder', sorted({osp.dirname(p) for p in CONFIGS}),
                         ids=lambda p: osp.relpath(p, ROOT))
def test_metafile_lists_every_config_of_its_folder(folder):
    import json
    import statistics

    import yaml
    with open(osp.join(folder, 'metafile.yml')) as f:
        metafile = yaml.safe_load(f)
    models = metafile['Models']
    assert {m['Config'] for m in models} == {
        osp.relpath(p, ROOT) for p in CONFIGS if osp.dirname(p) == folder}
    # each model's collection is defined in its own metafile
    assert {m['In Collection'] for m in models} <= {
        c['Name'] for c in metafile.get('Collections', [])}
    toy = osp.basename(folder) in TOY_RESULTS
    if toy:
        with open(osp.join(ROOT, 'docs', TOY_RESULTS[osp.basename(folder)])) as f:
            measured = json.load(f)
    for model in models:
        assert 'Weights' not in model  # none are published
        runs = None
        if toy:
            name = re.fullmatch(r'(.+)-(\d+)it_toy(-lvis)?', model['Name'])
            # compare_losses.py's variant: the detectors' config name, RetinaNet's variant
            variant = name[1] if osp.basename(folder) == 'toy_detectors' else (
                name[1].removeprefix('retinanet_r18_fpn_').replace('-', '_'))
            runs = config_runs(measured, variant, int(name[2]))
        if 'Results' in model or runs:
            assert runs, (f"{model['Name']} lists Results, and its results file has no "
                          'runs of its config as it is')
            mean = statistics.mean(run['mAP'] for run in runs)
            assert model['Results'][0]['Metrics']['box AP'] == round(100 * mean, 1)


def config_runs(measured, variant, iters):
    """The runs of a toy config as it is: those of its variant at its iterations
    without --cfg-options, whatever their tag (the long-tail study tags CB focal's
    own setting cb_class_b0.999_g0.5, its other settings being options of it); of
    several such entries (runs on another machine: focal_epyc) the variant's own tag."""
    own = {tag: entry for tag, entry in measured.items() if entry['variant'] == variant
           and entry['iters'] == iters and not entry['options']}
    if len(own) > 1:  # the config run again on another machine: the variant's own tag
        assert variant in own, f'{len(own)} entries of {variant} run its config as it is'
        own = {variant: own[variant]}
    return next(iter(own.values()))['runs'] if own else None
