# The two commands a fresh machine needs: `make run` and `make test`.
# Each creates .venv and installs the project (editable) with everything it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint install clean

$(STAMP): pyproject.toml examples/hma-example-plugin/pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hma serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Three pytest-xdist workers: most tests wait on Redis, databases and child processes, so three
# keep two cores busy. Each worker gets its own Redis database (see hma_framework/testing.py).
PYTEST_ARGS ?= -n 3

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
