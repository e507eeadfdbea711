# The quick start is two commands: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench browser postgres clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Every extra plus the dev tools, at the exact versions of constraints.txt.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

# Debian's Chromium for the web-inbox browser test (never `playwright install`: no internet).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (browser tests will be skipped)"; fi; }

# Debian's PostgreSQL server binaries: the suite starts its own throw-away cluster with them.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql missing: run 'sudo apt-get install -y postgresql' (PostgreSQL tests will be skipped)"; fi; }

demo: $(STAMP)
	$(BIN)/qontak demo

# Two workers (pytest-xdist): the suite waits on subprocesses, sockets and a browser as much
# as it computes, so two cores overlap that and stay within three minutes.
test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests examples bench
	$(BIN)/ruff check --fix src tests examples bench

bench: $(STAMP)
	$(BIN)/python bench/run.py

# 20 runs of a minute at a matched limit, in-memory and shared limiters (~45 min; not in
# `make bench`); writes docs/soak.md and fails on any 429.
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python bench/soak.py --runs 20 --seconds 60

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pkgcheck
