# Two commands on a fresh machine with Python 3.11+ and a C++ compiler:
#   make run    create .venv, install lossgen and build its extension (first time), then `lossgen run`
#   make test   the same set-up, then the layer contracts and the test suite
# Both are idempotent: the set-up reruns only when pyproject.toml, setup.py or csrc/ change.
# TORCH: the torch to install (here the CPU build on disk; elsewhere e.g. TORCH=torch).
# EXTRAS: the extras installed with lossgen (EXTRAS=test,ray adds Ray; `make test-ray` runs its tests).
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
EXTRAS ?= test
comma := ,
STAMP := $(VENV)/.lossgen-installed-$(subst $(comma),-,$(EXTRAS))
SOURCES := pyproject.toml setup.py $(shell find csrc -type f 2>/dev/null)
# The ML-100K tests skip without LOSSGEN_DATA_DIR; use ../shared/data when it is there.
DATA_DIR := $(or $(LOSSGEN_DATA_DIR),$(wildcard $(abspath ..)/shared/data))

.PHONY: run test test-ray setup
run: $(STAMP)
	$(VENV)/bin/lossgen run

test: $(STAMP)
	cd $(CURDIR) && $(VENV)/bin/lint-imports
	LOSSGEN_DATA_DIR="$(DATA_DIR)" $(VENV)/bin/python -m pytest -q

# the Ray tests (tests/distributed, marker `ray`): a local multi-node Ray cluster; needs EXTRAS=test,ray
test-ray: $(STAMP)
	LOSSGEN_DATA_DIR="$(DATA_DIR)" $(VENV)/bin/python -m pytest -q -m ray tests/distributed

setup: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check "$(TORCH)"
	$(VENV)/bin/pip install -q --disable-pip-version-check "setuptools>=68" wheel pybind11 ninja
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-build-isolation -e ".[$(EXTRAS)]"
	touch $(STAMP)
