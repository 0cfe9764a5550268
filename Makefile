# wandblite: everything a fresh machine needs is installed by these targets (python3 and make are enough).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite runs on every core (at most 4), a test file per worker: its fixtures stay together.
PARALLEL ?= -n auto --maxprocesses=4 --dist loadfile

.PHONY: setup setup-test demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The SDK, the CLI and the server extra.
setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'

# Everything the tests need (test extra, linters, PyTorch CPU and the frameworks the drop-in tests drive).
setup-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q -r tests/requirements-frameworks.txt

# The main job: log an example run, sync it into the embedded local store, show it.
demo: setup
	WANDBLITE_HOME=$${WANDBLITE_HOME:-$(CURDIR)/.wandblite} $(BIN)/python examples/quickstart.py
	$(BIN)/wandblite ls runs
	WANDBLITE_HOME=$${WANDBLITE_HOME:-$(CURDIR)/.wandblite} $(BIN)/wandblite sync runs
	$(BIN)/wandblite show $$(ls -td runs/*/ | head -1)
	WANDBLITE_HOME=$${WANDBLITE_HOME:-$(CURDIR)/.wandblite} $(BIN)/python examples/read_store.py

# The whole test suite (starts PostgreSQL and installs Chromium where missing: see .ci/services.sh).
test: setup-test
	$(BIN)/ruff check wandblite cli tests examples
	$(BIN)/mypy wandblite cli
	bash .ci/services.sh
	WANDBLITE_NO_SKIP=1 WANDBLITE_REQUIRE_POSTGRES=1 WANDBLITE_REQUIRE_INTEROP=1 $(BIN)/python -m pytest -q $(PARALLEL) $(PYTEST_ARGS)
	# The core suite again on the pure-Python paths (what runs where the C accelerator is not built).
	WANDBLITE_NO_SKIP=1 WANDBLITE_NO_SPEEDUPS=1 $(BIN)/python -m pytest -q $(PARALLEL) -p no:cacheprovider tests/core

lint: setup-test
	$(BIN)/ruff check wandblite cli tests examples
	$(BIN)/mypy wandblite cli

bench: setup
	$(BIN)/python tests/bench/bench_core.py
	$(BIN)/python tests/media/bench_media.py

clean:
	rm -rf $(VENV) runs .wandblite build dist *.egg-info
