# SlideLens: `make demo` opens the demo slide, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export MPLBACKEND ?= Agg
export TQDM_DISABLE ?= 1

.PHONY: demo test lint typecheck unit bench bench-viewer bench-inference bench-ui bench-cam clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/slidelens demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check inference viewer tests
	$(BIN)/ruff format --check inference viewer tests

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

test: lint typecheck
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: bench-viewer bench-inference bench-ui

bench-viewer: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/slidelens bench viewer --json

bench-inference: $(STAMP)
	$(BIN)/slidelens bench inference --json

bench-ui: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/slidelens bench ui --json

# Score-CAM of a 4 x 4 region dominates: about ten minutes on a 2-core CPU
bench-cam: $(STAMP)
	$(BIN)/slidelens bench cam --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
