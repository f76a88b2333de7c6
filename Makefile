# hybrid-knative — developer habits. `make help` lists the targets.
PYTHON ?= python3
# offline mirror of the upstream files; the workspace's ../shared/upstream when present
MIRROR ?= $(wildcard ../shared/upstream)
DEPS := build/.deps-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install lock vendor format lint test test-unit bench snap bundle plan emulator clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(DEPS) ## install the package (editable) with test and dev tools

$(DEPS): pyproject.toml requirements/lock-dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/lock-dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@mkdir -p build && touch $@

lock: ## pin every dependency with its sha256 (requirements/lock.txt: runtime, 3.10+; lock-dev.txt: CI, 3.11+)
	uv pip compile pyproject.toml --universal --python-version 3.10 --generate-hashes --no-header \
		-o requirements/lock.txt
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes --no-header \
		-o requirements/lock-dev.txt

vendor: $(DEPS) ## fetch + verify the pinned upstream files (offline: make vendor MIRROR=../shared/upstream)
	$(PYTHON) scripts/vendor.py $(if $(MIRROR),--mirror $(MIRROR),)

format: $(DEPS) ## format and auto-fix
	$(PYTHON) -m ruff format src tests benchmarks scripts
	$(PYTHON) -m ruff check --fix src tests benchmarks scripts

lint: $(DEPS) ## ruff + mypy --strict on src/ + import-linter layer contracts (pyproject.toml)
	$(PYTHON) -m ruff check src tests benchmarks scripts addons/hybrid-knative/_shim.py
	$(PYTHON) -m mypy --strict src
	PYTHONPATH=src $(PYTHON) -c "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())" \
		--no-cache --config pyproject.toml

test: vendor ## the whole test suite (vendors from MIRROR or the network first)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-unit: vendor ## fast tests only
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

bench: vendor ## measured figures: render time, API requests and waits (printed, not asserted)
	$(PYTHON) benchmarks/run.py

plan: vendor ## render the full install for Kubernetes 1.34 into out/plan (no cluster needed)
	$(PYTHON) -m hybrid_knative plan --output out/plan --kubernetes-version 1.34

EMULATOR_KUBECONFIG ?= out/emulator/kubeconfig
EMULATOR_PORT ?= 0
emulator: vendor ## serve an emulated MicroK8s API on 127.0.0.1 until Ctrl-C (docs/emulator.md; EMULATOR_KUBECONFIG, EMULATOR_PORT)
	$(PYTHON) -m tests.harness.serve --kubeconfig $(EMULATOR_KUBECONFIG) --port $(EMULATOR_PORT)

snap: vendor ## build the snap into dist/: snapcraft when installed, else scripts/build_snap.py + `snap pack`
	@mkdir -p dist
	@if command -v snapcraft >/dev/null 2>&1; then snapcraft pack --output dist/; \
	else $(PYTHON) scripts/build_snap.py --output dist; fi

BUNDLE ?= out/site.bundle
ARCH ?= amd64,arm64
bundle: vendor ## build an air-gap bundle (BUNDLE=out/site.bundle ARCH=amd64,arm64; needs skopeo + network)
	@mkdir -p $(dir $(BUNDLE))
	$(PYTHON) -m hybrid_knative bundle create -o $(BUNDLE) --arch $(ARCH)

clean: ## remove build output (keeps vendored files)
	rm -rf build dist out .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
