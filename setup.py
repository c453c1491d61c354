from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / 'mmdet_ghm' / 'version.py').read_text(), version)


def read_requirements(name):
    lines = (ROOT / 'requirements' / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


setup(
    name='mmdet-ghm',
    version=version['__version__'],
    description='Gradient harmonizing (GHM-C, GHM-R), focal and class-balanced '
    'focal losses for MMDetection 3.x, with Triton GPU kernels',
    long_description=(ROOT / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_ghm', 'mmdet_ghm.*']),
    # the build needs setuptools >= 77 (pyproject.toml), which needs Python 3.9; the
    # Makefile's pins (numpy 2.4, pytest 9.2) have no wheels below 3.11
    python_requires='>=3.9',
    # Ranges, not pins: users install into their own torch/mmcv environment.
    # The Makefile installs the exact pins of requirements/*.txt.
    install_requires=['torch', 'mmcv>=2.0.0rc4,<2.2.0', 'mmengine>=0.10,<0.11',
                      'mmdet>=3.3,<3.4'],
    extras_require={
        # for a CPU torch: what requirements/triton.txt installs (the interpreter
        # the tests use needs >= 3.0); a CUDA torch brings its own triton
        'triton': read_requirements('triton.txt'),
        # the LVIS configs: mmdet's LVISV1Dataset and LVISMetric import lvis (the
        # official lvis-api's release on PyPI; requirements/runtime.txt pins it)
        'lvis': ['lvis>=0.5.3'],
        'tests': read_requirements('tests.txt'),
    },
    license='Apache-2.0',
)
