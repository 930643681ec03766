# Two entry points for a fresh machine (see README):
#   make demo   set up .venv and run the main job
#   make test   set up .venv with the test extras and run the test suite
#               (triton and numba are among them: Triton kernels run under TRITON_INTERPRET=1
#               on the CPU, numba compiles the CPU auction of the approximate EMD)
# Both are idempotent: stamps in .venv skip the installs on a second run
# unless setup.py changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_PIN ?= torch==2.13.0
PYTEST_ARGS ?= -q -n 2

.PHONY: demo test install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: an unpinned requirement resolved on its own pulls a
# multi-GB CUDA build where a CPU build of this release is at hand.
$(VENV)/.torch: | $(PY)
	$(PIP) install "$(TORCH_PIN)"
	touch $@

$(VENV)/.core: setup.py $(VENV)/.torch
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: setup.py $(VENV)/.torch
	$(PIP) install -e ".[dev,open3d,pyg,triton,numba]"
	touch $@ $(VENV)/.core

install: $(VENV)/.core
install-dev: $(VENV)/.dev

demo: $(VENV)/.core
	$(VENV)/bin/geo4g demo

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
