# One-command entry points; everything installs into .venv from nothing but Python 3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
PIP_QUIET := --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: install mcp-servers demo test test-heavy test-all test-ci faults browser cluster cluster-down ui check lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	@# bfcl-eval without its dependencies: its full install is 6 GB of torch/CUDA we do not need
	$(BIN)/pip install $(PIP_QUIET) --no-deps "bfcl-eval==2026.3.23" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	$(BIN)/python -c "import dagster, duckdb, polars, bfcl_eval, funreason_pipeline" 
	touch $@

install: $(BIN)/.installed

# the MCP servers of data/mcp_toolsets.yaml and tests/test_mcp_*.py, from the registries into .mcp/
# (exact versions in deploy/mcp/): npm packages under .mcp/npm, mcp-server-sqlite in its own venv
# because it needs the mcp 1.x SDK
MCP := .mcp
mcp-servers: $(MCP)/npm/.installed $(MCP)/venvs/sqlite/.installed

$(MCP)/npm/.installed: deploy/mcp/npm/package.json deploy/mcp/npm/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"; exit 1; }
	mkdir -p $(MCP)/npm
	cp deploy/mcp/npm/package.json deploy/mcp/npm/package-lock.json $(MCP)/npm/
	npm ci --prefix $(MCP)/npm --no-audit --no-fund --loglevel=error
	touch $@

$(MCP)/venvs/sqlite/.installed: deploy/mcp/sqlite-requirements.txt
	$(PYTHON) -m venv $(MCP)/venvs/sqlite
	$(MCP)/venvs/sqlite/bin/pip install $(PIP_QUIET) -r deploy/mcp/sqlite-requirements.txt 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	$(MCP)/venvs/sqlite/bin/python -c "import mcp_server_sqlite"
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m funreason_pipeline.cli demo

# the everyday suite; the heavy end-to-end tests (@pytest.mark.heavy: cluster, browser, backfill daemon,
# crash and resume, CLI demos, docs verbatim) are in test-heavy; test-all (what CI runs) is both, one session
# --dist worksteal: a worker that runs out of tests takes pending ones from the other, so a long Dagster test
# queued late on one worker does not leave the other idle at the end (xdist's default `load` hands out
# fixed chunks)
test: install mcp-servers
	$(BIN)/pytest -q -n 2 --dist worksteal -m "not heavy" tests

test-heavy: install mcp-servers
	$(BIN)/pytest -q -n 2 --dist worksteal -m heavy tests

test-all: install mcp-servers
	$(BIN)/pytest -q -n 2 --dist worksteal tests

# the full fault suite: R1 fault mix and R2 crash-and-resume (LLM stage, DuckDB writes) at a larger size
faults: install
	$(BIN)/python scripts/fault_suite.py

# CI: Debian's Chromium for the UI test (apt, as root), which then must run rather than skip
browser:
	./scripts/install_chromium.sh

test-ci: install mcp-servers browser
	./scripts/cluster_up.sh install
	FUNREASON_REQUIRE_BROWSER=1 FUNREASON_REQUIRE_CLUSTER=1 $(MAKE) test-all

# a one-machine cluster with real services (docs/cluster.md): apt-installs
# PostgreSQL and Redis (as root), starts them on loopback with 2 Celery workers, runs a day of 4 toolsets
cluster: install
	./scripts/cluster_up.sh

cluster-down:
	./scripts/cluster_up.sh down

check: install
	$(BIN)/dg check defs

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev

lint: install
	$(BIN)/ruff check funreason_pipeline tests bench scripts testing

clean:
	-./scripts/cluster_up.sh down >/dev/null 2>&1
	rm -rf data/dagster_home data/*.duckdb data/*.wal data/exports data/cluster test-artifacts
