# One command from a fresh clone: `make test` (and later `make demo`).
# Every step leaves a stamp in .venv, so a second run installs nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
S      := $(VENV)/.stamps
# mmcv compiles with one job per core; override with `make MAX_JOBS=8`.
MAX_JOBS ?= $(shell nproc)
PYTEST_ARGS ?=

.PHONY: env test demo compare compat clean-env

TOY := data/toy_coco/annotations/instances_train.json

env: $(S)/package

$(PY):
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(S)

# Keep a torch that is already in the venv (e.g. a CUDA build the user put there).
$(S)/torch: requirements/torch.txt | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -r requirements/torch.txt
	touch $@

# Triton only where torch did not bring one: a CUDA torch pins its own release.
$(S)/triton: requirements/triton.txt $(S)/torch
	$(PY) -c "import triton" 2>/dev/null || $(PIP) install -r requirements/triton.txt
	touch $@

$(S)/build: requirements/build.txt $(S)/torch
	$(PIP) install -r requirements/build.txt
	touch $@

# ~21 min on 2 cores the first time; pip caches the built wheel for later venvs.
$(S)/mmcv: requirements/mmcv.txt $(S)/build
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation -r requirements/mmcv.txt
	$(PY) -c "import mmcv.ops"
	touch $@

$(S)/runtime: requirements/runtime.txt $(S)/mmcv
	$(PIP) install -r requirements/runtime.txt
	touch $@

$(S)/tests: requirements/tests.txt $(S)/runtime $(S)/triton
	$(PIP) install -r requirements/tests.txt
	touch $@

$(S)/package: setup.py $(S)/tests
	$(PIP) install --no-build-isolation --no-deps -e .
	touch $@

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

$(TOY): tools/make_toy_coco.py | $(S)/package
	$(PY) tools/make_toy_coco.py --out data/toy_coco

# Trains the toy GHM RetinaNet on the CPU (~10 min), evaluates it with CocoMetric,
# prints its mAP next to the README's range over seeds, and leaves checkpoint, logs
# and the density plots in work_dirs/ghm_retinanet_toy.
demo: env $(TOY)
	$(PY) tools/demo.py --work-dir work_dirs/ghm_retinanet_toy

# The README's toy table: the main variants over 3 seeds, two runs at a time
# (about an hour on 2 cores); finished runs are kept and not trained again.
compare: env $(TOY)
	$(PY) tools/compare_losses.py --seeds 3 --variants ghm focal --jobs 2

# Compiles every kernel specialisation with each triton release of the supported
# range (installed side by side under ~/.cache/mmdet-ghm-compat) for sm_80 and
# sm_90, and prints the README's table. Downloads each release once; not in CI.
compat: env
	$(PY) tools/triton_compat.py

clean-env:
	rm -rf $(VENV)
