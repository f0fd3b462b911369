PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seqssm-deps-stamp

COMPAT := .venv-compat
COMPAT_PY := $(COMPAT)/bin/python
COMPAT_STAMP := $(COMPAT)/.seqssm-compat-stamp

.PHONY: test test-compat demo venv clean-stamp

# Install once; the stamp is redone only when the pins or pyproject.toml change.
$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "setuptools>=68" wheel
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install -e . --no-deps --no-build-isolation
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) -m seqssm.pipelines.demo

clean-stamp:
	rm -f $(STAMP)

# The oldest tested versions (torch 2.11, Triton 3.6: the GPU machine's) in a second environment, .venv-compat:
# the kernel and core tests, interpreter cases and the ahead-of-time compile test included.
$(COMPAT_STAMP): requirements-compat.txt pyproject.toml
	test -x $(COMPAT_PY) || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT_PY) -m pip install "setuptools>=68" wheel
	$(COMPAT_PY) -m pip install -r requirements-compat.txt
	$(COMPAT_PY) -m pip install -e . --no-deps --no-build-isolation
	touch $(COMPAT_STAMP)

test-compat: $(COMPAT_STAMP)
	$(COMPAT_PY) -m pytest -q tests/kernels tests/core
