"""Every bad input we know of, and the error it gets: the loss's name, the
argument and the expected form. On CUDA the value checks are device-side asserts
(no host sync); on the CPU they raise at once."""
import pytest
import torch
from mmdet_ghm.losses import (ClassBalancedFocalLoss, GHMCLoss, GHMRLoss,
                              SigmoidFocalLoss)


N, C = 6, 3


def logits():
    return torch.randn(N, C)


def labels():
    return torch.tensor([0, 1, 2, 3, 3, 1])


CLS_LOSSES = {
    'GHMCLoss': GHMCLoss,
    'SigmoidFocalLoss': SigmoidFocalLoss,
    'ClassBalancedFocalLoss': lambda: ClassBalancedFocalLoss(class_counts=[5, 3, 1]),
}


# (case, args, exception, message)
CLS_CASES = [
    ('label above C', lambda: (logits(), torch.tensor([0, 1, 2, 4, 3, 1])), RuntimeError,
     r'`target` labels must be in \[0, 3\] \(3 = background\)'),
    ('negative label', lambda: (logits(), torch.tensor([0, -1, 2, 3, 3, 1])), RuntimeError,
     r'`target` labels must be in \[0, 3\]'),
    ('float index labels', lambda: (logits(), labels().float()), TypeError,
     r'\(N,\) `target` must hold integer class indices'),
    ('integer one-hot', lambda: (logits(), torch.zeros(N, C, dtype=torch.long)), TypeError,
     r'\(N, C\) `target` must be float'),
    ('soft target above 1', lambda: (logits(), torch.full((N, C), 1.5)), RuntimeError,
     r'`target` must be in \[0.0, 1.0\]'),
    ('labels of another batch', lambda: (logits(), labels()[:4]), ValueError,
     r'`target` of index labels must have shape \(N,\) = \(6,\), got \(4,\)'),
    ('target of C + 1 columns', lambda: (logits(), torch.zeros(N, C + 1)), ValueError,
     r'`target` must be \(N,\) = \(6,\) index labels or \(N, C\) = \(6, 3\)'),
    ('1-d logits', lambda: (torch.randn(N), labels()), ValueError,
     r'`pred` must be \(N, C\) float logits'),
    ('integer logits', lambda: (torch.ones(N, C, dtype=torch.long), labels()), ValueError,
     r'`pred` must be \(N, C\) float logits'),
    ('NaN logit', lambda: (logits().index_put_((torch.tensor([2]), torch.tensor([1])),
                                                torch.tensor(float('nan'))), labels()),
     RuntimeError, r'`pred` contains NaN or Inf'),
    ('Inf logit', lambda: (logits().index_put_((torch.tensor([0]), torch.tensor([0])),
                                                torch.tensor(float('inf'))), labels()),
     RuntimeError, r'`pred` contains NaN or Inf'),
    ('weight of another batch', lambda: (logits(), labels(), torch.ones(N - 1)), ValueError,
     r'`weight` must have shape \(N,\) = \(6,\) or \(N, C\) = \(6, 3\), got \(5,\)'),
    ('negative weight', lambda: (logits(), labels(), -torch.ones(N)), RuntimeError,
     r'`weight` must be finite and >= 0.0 \(0 = ignored\)'),
    ('NaN weight', lambda: (logits(), labels(), torch.full((N, ), float('nan'))),
     RuntimeError, r'`weight` must be finite and >= 0.0'),
    ('Inf weight', lambda: (logits(), labels(), torch.full((N, ), float('inf'))),
     RuntimeError, r'`weight` must be finite and >= 0.0'),
]


@pytest.mark.parametrize('loss_name', CLS_LOSSES)
@pytest.mark.parametrize('case,make_args,error,message', CLS_CASES,
                         ids=[c[0] for c in CLS_CASES])
def test_classification_bad_input(loss_name, case, make_args, error, message):
    with pytest.raises(error, match=f'^{loss_name}: {message}'):
        CLS_LOSSES[loss_name]()(*make_args())


def deltas():
    return torch.randn(N, 4)


CONFIG_CASES = [
    (lambda: GHMCLoss(momentum=1.0), r'GHMCLoss: momentum must be in \[0, 1\)'),
    (lambda: GHMCLoss(bins=0), r'GHMCLoss: bins must be a positive int'),
    (lambda: GHMCLoss(use_sigmoid=False), r'GHMCLoss: use_sigmoid=False is not supported'),
    (lambda: GHMRLoss(mu=0), r'GHMRLoss: mu must be > 0'),
    (lambda: SigmoidFocalLoss(gamma=-1), r'SigmoidFocalLoss: gamma must be >= 0'),
    (lambda: SigmoidFocalLoss(reduction='avg'), r'SigmoidFocalLoss: reduction must be one'),
    (lambda: GHMCLoss(impl='cuda'), r'GHMCLoss: impl must be one of'),
    (lambda: GHMCLoss()(logits(), labels(), reduction_override='avg'),
     r'GHMCLoss: reduction must be one of'),
    (lambda: SigmoidFocalLoss(alpha=[0.25, 0.5])(logits(), labels()),
     r'SigmoidFocalLoss: `alpha` has 2 values but pred has 3 classes'),
    (lambda: ClassBalancedFocalLoss(class_counts=[4, 0, 1]),
     r'class_counts is 0 for class indices \[1\]'),
    (lambda: ClassBalancedFocalLoss(loss_type='softmax', use_sigmoid=False,
                                    class_counts=[1, 2, 3])(logits(), labels()),
     r"ClassBalancedFocalLoss: loss_type='softmax' needs \(N, C \+ 1\) = \(N, 4\) scores"),
]


@pytest.mark.parametrize('make,message', CONFIG_CASES)
def test_bad_configuration(make, message):
    with pytest.raises(ValueError, match=message):
        make()
