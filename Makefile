# The two commands a newcomer needs:  make run   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SRC := src/vidgate

.PHONY: run test lint bench bench-polling bench-fifo bench-http bench-streaming chaos clean

# --no-compile: pip would byte-compile every module of every package it installs (torch alone: 20 of its
# 29 s here); Python compiles, and caches, the few a process imports when it first imports them.
PIP_INSTALL := $(BIN)/pip install -q --no-compile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

# The `diffusion` extra (torch, diffusers: the diffusion engine's tests) only when asked, as on
# `make test DIFFUSION=1`, or where VIDGATE_TEST_REQUIRE_DIFFUSION=1 (.ci/run); without it those tests
# skip. Its torch comes from TORCH_INDEX_URL, PyTorch's CPU-only wheels (about 200 MB): PyPI's torch for
# Linux is a CUDA build of several GB. On a GPU machine: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
DIFFUSION ?= $(VIDGATE_TEST_REQUIRE_DIFFUSION)
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH_REQUIREMENT := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
WITH_DIFFUSION := $(filter-out 0,$(DIFFUSION))
comma := ,

# One pip run for the project and its extras, not one each: every run builds the project and resolves
# every dependency again.
$(VENV)/.installed-test: pyproject.toml $(if $(WITH_DIFFUSION),$(VENV)/.installed-torch) | $(BIN)/python
	$(PIP_INSTALL) -e '.[test$(if $(WITH_DIFFUSION),$(comma)diffusion)]'
	@$(BIN)/python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("diffusers") is None)' || \
		echo "note: the diffusion engine's tests will be skipped; 'make test DIFFUSION=1' installs torch's CPU build for them"
	touch $(VENV)/.installed $@

$(VENV)/.installed-torch: pyproject.toml | $(BIN)/python
	@test -n '$(TORCH_REQUIREMENT)' || { echo "Makefile: no torch==VERSION pin found in pyproject.toml" >&2; exit 1; }
	@# One retry: where the index cannot be reached, pip goes on with its other sources (a local wheel
	@# folder, a mirror) instead of backing off five times for each of torch's dependencies.
	$(PIP_INSTALL) --retries 1 --index-url $(TORCH_INDEX_URL) '$(TORCH_REQUIREMENT)'
	touch $@

## Install and serve on the embedded defaults: SQLite + ./data + the built-in animate engine.
run: $(VENV)/.installed
	$(BIN)/vidgate serve

# Test files run on this many processes (pytest-xdist), each file whole on one of them (its module
# fixtures built once). Three on a 2-core machine: much of a test's time is spent waiting (loopback HTTP,
# child processes, polling), so a third process keeps the cores busy (the whole run: 1284 s with two,
# 1116 s with three). Four were faster again (tests 763 s against 872 s) but put files together that had
# never shared a process, and one such run failed: a socket's descriptor was closed by code that did not
# own it (not found yet).
# `--no-loadscope-reorder` keeps the order tests/file_order.py sets (the longest files first); xdist's
# own puts the files with the most tests first, which left the few long end-to-end files, each spawning
# servers, to run together at the end.
TEST_PROCESSES ?= 3

# The tests run with bytecode caching on, whatever PYTHONDONTWRITEBYTECODE says (set on some machines):
# without it every process compiles every module it imports again, and a run starts hundreds of them
# (servers, workers, render and media processes): importing the server took 3.3 s that way against 1.3 s
# from cached bytecode, and two test files that start many `vidgate` commands 145 s against 60 s. The
# caches stay in the clone's ignored __pycache__ folders.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/pytest

## Install and run every test. PostgreSQL tests run when VIDGATE_TEST_PG_URL is set; as root, a local
## PostgreSQL is installed and started for them, without fsync (scripts/start-postgres --throwaway).
test: $(VENV)/.installed-test
	@if [ -z "$$VIDGATE_TEST_PG_URL" ] && [ "$$(id -u)" = 0 ]; then \
		export VIDGATE_TEST_PG_URL=$$(scripts/start-postgres --throwaway); \
	fi; \
	if [ -z "$$VIDGATE_TEST_PG_URL" ]; then echo "note: PostgreSQL tests are skipped (no VIDGATE_TEST_PG_URL)"; fi; \
	$(PYTEST) -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo  # the import contracts in pyproject.toml: no cycles, layers kept

bench: $(VENV)/.installed-test
	$(BIN)/python bench/animate_vs_encode.py

## One worker process tracking 5,000 upstream jobs on the fake upstream (PostgreSQL; see docs/performance.md).
bench-polling: $(VENV)/.installed-test
	@if [ -z "$$VIDGATE_TEST_PG_URL" ] && [ "$$(id -u)" = 0 ]; then \
		export VIDGATE_TEST_PG_URL=$$(scripts/start-postgres); \
	fi; \
	$(BIN)/python bench/upstream_polling.py

## A burst of 24 tasks on the built-in engine: FIFO claims against the old due-time order.
bench-fifo: $(VENV)/.installed-test
	$(BIN)/python bench/fifo_scheduling.py

## Query and create throughput with wrk against a bare Starlette app, SQLite and PostgreSQL (apt-get install wrk).
bench-http: $(VENV)/.installed-test
	@if [ -z "$$VIDGATE_TEST_PG_URL" ] && [ "$$(id -u)" = 0 ]; then \
		export VIDGATE_TEST_PG_URL=$$(scripts/start-postgres); \
	fi; \
	$(BIN)/python bench/http_api.py --db both

## One 50 MB video to 50 clients: RSS growth and MiB/s against a bare FileResponse (needs wrk).
bench-streaming: $(VENV)/.installed-test
	$(BIN)/python bench/streaming.py

## The full chaos test (300 tasks, 3 workers on PostgreSQL, SIGKILLs every few seconds) and the full
## multi-worker run (520 tasks, 3 workers); `make test` runs short forms of both.
chaos: $(VENV)/.installed-test
	@if [ -z "$$VIDGATE_TEST_PG_URL" ] && [ "$$(id -u)" = 0 ]; then \
		export VIDGATE_TEST_PG_URL=$$(scripts/start-postgres --throwaway); \
	fi; \
	VIDGATE_CHAOS_TASKS=300 VIDGATE_CHAOS_SQLITE_TASKS=100 VIDGATE_MULTIWORKER_TASKS=520 \
		$(PYTEST) -s tests/e2e/test_chaos.py tests/e2e/test_multiworker.py

## The deployment checks (docs/deploy.md, tests/deploy): compose.yaml and the Kubernetes manifests
## validated, then the image built with podman from a Debian base made by debootstrap and smoke-tested
## inside its build, and the diffusion target (minutes). As root, podman and debootstrap are installed
## from Debian when missing; without them (or root) the image tests skip, saying why. The base, podman's
## store and the build logs go to VIDGATE_DEPLOY_CACHE (default /tmp/vidgate-deploy-cache).
.PHONY: deploy-check
deploy-check: $(VENV)/.installed-test
	@if [ "$$(id -u)" = 0 ] && ! { command -v podman && command -v debootstrap; } >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap; \
	fi
	$(PYTEST) tests/deploy -m "deploy or not deploy" -v -rs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
