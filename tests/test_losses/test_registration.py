import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS

import mmdet_ghm
from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)


@pytest.mark.parametrize('cfg,cls', [
    (dict(type='GHMCLoss', bins=30, momentum=0.75, use_sigmoid=True), GHMCLoss),
    (dict(type='GHMRLoss', mu=0.02, bins=10, momentum=0.7, loss_weight=10.0), GHMRLoss),
    (dict(type='SigmoidFocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
     SigmoidFocalLoss),
    (dict(type='ClassBalancedFocalLoss', use_sigmoid=True, class_counts=[9, 3, 1]),
     ClassBalancedFocalLoss),
])
def test_build_from_config(cfg, cls):
    loss = MODELS.build(cfg)
    assert type(loss) is cls
    # mmdet's own GHM losses keep their names
    assert MODELS.get('GHMC') is not GHMCLoss and MODELS.get('GHMR') is not GHMRLoss


def test_defaults_are_the_coco_config():
    ghmc, ghmr = GHMCLoss(), GHMRLoss()
    assert (ghmc.density.bins, ghmc.density.momentum, ghmc.loss_weight) == (30, 0.75, 1.0)
    assert (ghmr.mu, ghmr.density.bins, ghmr.density.momentum,
            ghmr.loss_weight) == (0.02, 10, 0.7, 10.0)


def test_ema_is_in_state_dict():
    loss = GHMCLoss()
    loss(torch.randn(10, 3), torch.randint(0, 4, (10, )))
    state = loss.state_dict()
    assert set(state) == {'density.acc_sum'}
    fresh = GHMCLoss()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.density.acc_sum, loss.density.acc_sum)
    assert loss.density.acc_sum.sum() > 0


# A fresh interpreter: in this one the package is imported already.
CUSTOM_IMPORTS = """
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.utils import import_modules_from_strings
names = ('GHMCLoss', 'GHMRLoss', 'SigmoidFocalLoss', 'ClassBalancedFocalLoss',
         'EqualizedFocalLoss', 'GHMRetinaHead')
assert not any(name in MODELS.module_dict for name in names), 'registered before the import'
cfg = Config(dict(custom_imports=dict(imports=['mmdet_ghm'], allow_failed_imports=False)))
import_modules_from_strings(**cfg.custom_imports)
missing = [name for name in names if name not in MODELS.module_dict]
assert not missing, f'not registered: {missing}'
print(MODELS.get('GHMCLoss').__module__)
"""


def test_custom_imports_registers_through_config():
    out = subprocess.run([sys.executable, '-c', CUSTOM_IMPORTS], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'mmdet_ghm.losses.ghm_c'
    assert mmdet_ghm.__version__
