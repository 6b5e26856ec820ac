# CenterWatch — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080
CENTER ?= hai-chau

# Debian packages the integration tests need (installed only when running as root).
TEST_DEBS := $(shell cat tests/debian-packages.txt 2>/dev/null | grep -v '^\#')

.PHONY: run test lint typecheck pytest bench install install-test debs clean

$(VENV)/.stamp-run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[collector]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-run
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.stamp-run
install-test: $(VENV)/.stamp-test

## make run: collector on embedded SQLite + a local agent reporting this machine; Ctrl-C stops both.
run: install
	$(PY) scripts/devrun.py --port $(PORT) --center $(CENTER)

debs:
	@if [ "$$(id -u)" = "0" ] && [ -n "$(TEST_DEBS)" ]; then \
	  missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages for the integration tests: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

pytest: install-test debs
	$(VENV)/bin/pytest -q -ra

## make test: lint, types, then the whole suite (unit + integration).
test: lint typecheck pytest

bench: install-test
	$(PY) bench/agent_cost.py
	$(PY) bench/ingest.py
	$(PY) bench/snmp_walk.py
	$(PY) bench/alert_eval.py --sizes 94x20

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache *.egg-info
