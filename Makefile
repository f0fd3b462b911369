PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seqssm-deps-stamp

.PHONY: test demo venv clean-stamp

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
