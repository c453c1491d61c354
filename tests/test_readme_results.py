"""The toy tables (docs/ghm_on_small_data.md, docs/long_tail.md and docs/detectors.md,
summarised in the README) are the ones docs/toy_results.json,
docs/toy_lvis_results.json and docs/toy_detectors_results.json (every run's numbers)
give, so the numbers a user reads are the measured ones."""
import json
import os.path as osp

import pytest

from .test_tools.conftest import ROOT, load_tool

compare_losses = load_tool('compare_losses')


@pytest.mark.parametrize('results_file, page, least_runs_shown', [
    ('toy_results.json', 'ghm_on_small_data.md', 12),  # ghm, ghm_batch, ghm_mu0.2, focal
    ('toy_lvis_results.json', 'long_tail.md', 30),  # every run of the long-tail study
    ('toy_detectors_results.json', 'detectors.md', 54),  # every detector run
])
def test_every_measured_row_is_in_the_toy_study_as_measured(results_file, page,
                                                            least_runs_shown):
    with open(osp.join(ROOT, 'docs', results_file)) as f:
        results = json.load(f)
    with open(osp.join(ROOT, 'docs', page)) as f:
        lines = f.read().splitlines()
    shown_runs = 0
    for tag, entry in results.items():
        assert len(entry['runs']) >= 3, f'{tag}: fewer than 3 seeds'
        summary_row = compare_losses.table({tag: entry}).splitlines()[-1]
        assert summary_row in lines, summary_row
        # a run the README shows (the per-run tables) is shown as measured
        for row, run in zip(compare_losses.per_run_table(results, [tag]).splitlines()[2:],
                            entry['runs']):
            shown = [line for line in lines if line.startswith(f'| {tag} | {run["seed"]} |')]
            assert shown in ([], [row]), (shown, row)
            shown_runs += bool(shown)
    assert shown_runs >= least_runs_shown


def test_the_demo_row_is_measured():
    with open(osp.join(ROOT, 'docs', 'toy_results.json')) as f:
        results = json.load(f)
    assert load_tool('demo').DEMO_TAG in results


def test_the_readme_summary_is_measured():
    """The README's toy line: mean ± std of bbox mAP over the seeds, as measured."""
    import statistics
    with open(osp.join(ROOT, 'docs', 'toy_results.json')) as f:
        results = json.load(f)
    with open(osp.join(ROOT, 'README.md')) as f:
        readme = f.read()
    for name, tag in (('focal', 'focal'), ('GHM', 'ghm'),
                      ('GHM with GHM-R `mu=0.2`', 'ghm_mu0.2')):
        maps = [run['mAP'] for run in results[tag]['runs']]
        shown = f'{name} {statistics.mean(maps):.3f} ± {statistics.stdev(maps):.3f}'
        assert shown in readme, shown


def test_the_readme_detector_results_are_measured():
    """The README's detector line: every mean ± std in it is a measured row's."""
    import re
    import statistics
    with open(osp.join(ROOT, 'docs', 'toy_detectors_results.json')) as f:
        results = json.load(f)
    with open(osp.join(ROOT, 'README.md')) as f:
        line = next(row for row in f if row.startswith('| [configs/toy_detectors/]'))
    measured = set()
    for entry in results.values():
        maps = [run['mAP'] for run in entry['runs']]
        measured.add(f'{statistics.mean(maps):.3f} ± {statistics.stdev(maps):.3f}')
    shown = re.findall(r'\d\.\d{3} ± \d\.\d{3}', line)
    assert len(shown) >= 12 and set(shown) <= measured, (shown, measured)


def test_the_losses_page_example_runs(capsys):
    import re
    with open(osp.join(ROOT, 'docs', 'losses.md')) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    example = next(b for b in blocks if 'MODELS.build' in b)
    namespace = {}
    exec(compile(example, 'docs/losses.md', 'exec'), namespace)
    assert namespace['loss'].dim() == 0 and namespace['logits'].grad is not None
    assert namespace['ghmc'].density.acc_sum.sum() > 0


def test_every_link_of_the_readme_and_docs_exists():
    import glob
    import re
    pages = [osp.join(ROOT, 'README.md')] + glob.glob(osp.join(ROOT, 'docs', '*.md'))
    missing = []
    for page in pages:
        with open(page) as f:
            for link in re.findall(r'\]\(([^)#]+)\)', f.read()):
                target = osp.normpath(osp.join(osp.dirname(page), link))
                if not link.startswith('http') and not osp.exists(target):
                    missing.append((osp.relpath(page, ROOT), link))
    assert len(pages) >= 10 and not missing, missing
