# Every target does its own set-up on a fresh machine: Debian packages, the Python venv and the
# Go-built control-plane binaries (cached outside the repository, ~/.cache/mlrollout).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BIN_DIR_FILE := $(VENV)/.bindir
PYTEST_ARGS ?=
# Modules run side by side, each worker with its own control plane (tests/harness/ordering.py).
TEST_WORKERS ?= 4

.PHONY: test demo lint sync cluster-up cluster-down system-deps venv binaries bench bench-serving bench-drift bench-abtest bench-operator clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[operator,runtime,dev]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash tests/harness/system-deps.sh

binaries:
	@mkdir -p $(VENV)
	@set -o pipefail; bash tests/harness/build-binaries.sh | tail -n 1 > $(BIN_DIR_FILE).tmp && mv $(BIN_DIR_FILE).tmp $(BIN_DIR_FILE)

test: system-deps venv binaries
	MLROLLOUT_BIN_DIR=$$(cat $(BIN_DIR_FILE)) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check operator tests bench charts/sync.py
	$(VENV)/bin/mypy
	cd tests && ../$(VENV)/bin/mypy --strict --explicit-package-bases harness
	cd operator && ../$(VENV)/bin/lint-imports --config ../pyproject.toml

# After changing the API models: regenerate the CRD, then copy it into the chart and manifests/.
sync: venv
	$(PY) -m mlrollout.api.crd > crds/mlrollout.io_modeldeployments.yaml
	$(PY) charts/sync.py

cluster-up: system-deps venv binaries
	@MLROLLOUT_BIN_DIR=$$(cat $(BIN_DIR_FILE)) PYTHONPATH=tests $(PY) -m harness.cli up

cluster-down: venv
	@PYTHONPATH=tests $(PY) -m harness.cli down

demo: system-deps venv binaries
	@MLROLLOUT_BIN_DIR=$$(cat $(BIN_DIR_FILE)) PYTHONPATH=tests $(PY) -m harness.demo

bench-serving: system-deps venv
	$(PY) -m bench.serving

bench-drift: venv
	$(PY) -m bench.drift

bench-abtest: venv
	$(PY) -m bench.abtest

# The operator at scale on the real control plane with kwok nodes (MLROLLOUT_BENCH_SIZES=100,1000).
bench-operator: system-deps venv binaries
	MLROLLOUT_BIN_DIR=$$(cat $(BIN_DIR_FILE)) PYTHONPATH=tests $(PY) -m bench.operator

bench: bench-serving bench-drift bench-abtest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
