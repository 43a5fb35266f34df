# On a fresh machine: `make demo`, `make test` (the fast loop) and `make test-all` (everything,
# what CI runs). Each sets up what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Meltano gets a virtualenv of its own: it pins libraries the tap's environment must not share.
MELTANO_VENV ?= .venv-meltano
MELTANO      := $(MELTANO_VENV)/bin/meltano
# Dagster too (the `dagster` extra): its pins stay out of the project's own environment.
DAGSTER_VENV  ?= .venv-dagster
DAGSTER       := $(DAGSTER_VENV)/bin/dagster
DAGSTER_STAMP := $(DAGSTER_VENV)/.installed

.PHONY: install meltano dagster postgres demo test test-all test-fast test-compat lint bench bench-memory clean

# The runtime alone (what `make demo` needs), then the development tools on top (tests, lint).
RUNTIME_STAMP := $(VENV)/.installed-runtime

$(RUNTIME_STAMP): pyproject.toml
	@echo "Setting up $(VENV) with the runtime packages (first run: about a minute)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo "Adding the development tools to $(VENV) (pytest, requests-mock, ruff, mypy)..."
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(MELTANO):
	test -x $(MELTANO_VENV)/bin/python || $(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet "meltano~=4.4"

meltano: $(MELTANO)

# The Dagster code location (analytics_dagster) with the project installed editable, checked.
$(DAGSTER_STAMP): pyproject.toml
	test -x $(DAGSTER_VENV)/bin/python || $(PYTHON) -m venv $(DAGSTER_VENV)
	$(DAGSTER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DAGSTER_VENV)/bin/python -m pip install --quiet -e '.[dagster]'
	$(DAGSTER_VENV)/bin/python -m pip check
	touch $(DAGSTER_STAMP)

dagster: $(DAGSTER_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/python scripts/demo.py

# The PostgreSQL server binaries the tests start a throwaway cluster with (tests/postgres.py):
# the Debian `postgresql` package, installed with apt-get when missing (sudo unless root).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries: present"; \
	else \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends postgresql; \
	fi

# The fast loop (under 5 minutes on 2 cores): unit, conformance (both engines) and the core
# end-to-end runs (tests/conftest.py CORE_E2E); every test marked `slow` is left to test-all.
# Needs .venv only: no Meltano, Dagster or PostgreSQL.
test: $(STAMP)
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/python -m pytest -q -m "not slow"

# Everything, and what .ci/run runs: the whole suite (Meltano, Dagster, PostgreSQL, kills,
# reliability), then test-compat. Creates .venv-meltano, .venv-dagster and .venv-compat and
# installs the PostgreSQL server with apt-get when missing.
test-all: $(STAMP) $(MELTANO) dagster postgres
	MELTANO_BIN=$(CURDIR)/$(MELTANO) DAGSTER_BIN=$(CURDIR)/$(DAGSTER) RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/python -m pytest -q
	$(MAKE) test-compat

# Unit tests only (seconds).
test-fast: $(STAMP)
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/python -m pytest -q tests/unit

# Unit tests, the end-to-end tap sync and the compat checks on the newest singer-sdk and dlt,
# pre-releases included, in a virtualenv of their own (.venv-compat). Part of `make test-all`.
test-compat:
	PYTHON=$(PYTHON) scripts/test_compat.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(MELTANO_VENV) $(DAGSTER_VENV) .venv-compat .meltano output demo-out bench-out .pytest_cache .mypy_cache .ruff_cache
