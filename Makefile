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
# The stack a venv is built with: the pinned one here; `make stack-check` passes
# the torch 2.1 one (requirements/torch2.1/).
TORCH_REQ    ?= requirements/torch.txt
TRITON_REQ   ?= requirements/triton.txt
NUMERICS_REQ ?= requirements/numerics.txt
# mmcv wheels, one folder per torch version they were compiled against: pip's own
# wheel cache is not keyed by torch, and its wheel fails against another torch
# (`import mmcv.ops`: undefined symbol).
WHEELS ?= $(HOME)/.cache/mmdet-ghm/wheels

.PHONY: env test demo compare compare-lvis compat stack-check clean-env

TOY := data/toy_coco/annotations/instances_train.json
TOY_LVIS := data/toy_lvis/annotations/lvis_v1_train.json

env: $(S)/package

$(PY):
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(S)

# Keep a torch that is already in the venv (e.g. a CUDA build the user put there).
$(S)/torch: $(TORCH_REQ) | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -r $(TORCH_REQ)
	touch $@

# Triton only where torch did not bring one: a CUDA torch pins its own release.
$(S)/triton: $(TRITON_REQ) $(S)/torch
	$(PY) -c "import triton" 2>/dev/null || $(PIP) install -r $(TRITON_REQ)
	touch $@

$(S)/build: requirements/build.txt $(NUMERICS_REQ) $(S)/torch
	$(PIP) install -r requirements/build.txt -r $(NUMERICS_REQ)
	touch $@

# Compiled once per torch version (~21 min on 2 cores) into $(WHEELS)/torch-<version>,
# then installed from there; a venv with another torch compiles its own.
$(S)/mmcv: requirements/mmcv.txt $(S)/build
	@wheels="$(WHEELS)/torch-$$($(PY) -c 'import torch; print(torch.__version__)')"; \
	if ls "$$wheels"/mmcv-*.whl >/dev/null 2>&1; then \
	  echo "mmcv: the wheel in $$wheels was built against this torch"; \
	else \
	  echo "mmcv: compiling against this torch into $$wheels (pip's cache is not used: it is not keyed by torch)"; \
	  MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PIP) wheel --no-cache-dir --no-build-isolation \
	    --no-deps -w "$$wheels" -r requirements/mmcv.txt || exit 1; \
	fi; \
	$(PIP) install --only-binary mmcv --find-links "$$wheels" -r requirements/mmcv.txt
	$(PY) -c "import mmcv.ops"
	touch $@

$(S)/runtime: requirements/runtime.txt $(NUMERICS_REQ) $(S)/mmcv
	$(PIP) install -r requirements/runtime.txt -r $(NUMERICS_REQ)
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

# Trains the toy GHM RetinaNet on the CPU (4 to 17 min on one thread of a 2-core AMD
# EPYC, by model: docs/development.md), evaluates it with CocoMetric,
# prints its mAP next to the README's range over seeds, and leaves checkpoint, logs
# and the density plots in work_dirs/ghm_retinanet_toy.
demo: env $(TOY)
	$(PY) tools/demo.py --work-dir work_dirs/ghm_retinanet_toy

# The README's toy table: the main variants over 3 seeds, two runs at a time
# (about an hour on 2 cores); finished runs are kept and not trained again.
compare: env $(TOY)
	$(PY) tools/compare_losses.py --seeds 3 --variants ghm focal --jobs 2

$(TOY_LVIS): tools/make_toy_lvis.py tools/make_toy_coco.py | $(S)/package
	$(PY) tools/make_toy_lvis.py --out data/toy_lvis

# The long-tail study's focal, GHM and class-balanced base configs over 3 seeds on
# the generated LVIS-format set (about 50 minutes on 2 cores); the other settings
# of docs/long_tail.md are --tag / --cfg-options of the cb_focal config.
compare-lvis: env $(TOY_LVIS)
	$(PY) tools/compare_losses.py --dataset lvis --seeds 3 --variants focal ghm cb_focal --jobs 2

# Compiles every kernel specialisation with the last patch release of each triton
# minor, 2.1 to 3.9 (installed side by side under ~/.cache/mmdet-ghm-compat) for
# sm_80 and sm_90, and prints the README's table. Downloads each release once; not in CI.
compat: env
	$(PY) tools/triton_compat.py

# The whole suite on the stack most mmdet 3.3 users run: torch 2.1.2 (CUDA build,
# run on the CPU here), triton 2.1.0, numpy 1.26.4, opencv-python 4.x, mmcv 2.1.0
# compiled against that torch, in its own venv. Not in CI (about 45 min the first
# time: a 2.5 GB download and an mmcv build).
stack-check:
	$(MAKE) test VENV=.venv-torch2.1 TORCH_REQ=requirements/torch2.1/torch.txt \
	  TRITON_REQ=requirements/torch2.1/triton.txt \
	  NUMERICS_REQ=requirements/torch2.1/numerics.txt

clean-env:
	rm -rf $(VENV)
