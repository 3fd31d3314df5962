# The two commands the README promises: `make run` (a local dry run against the exchange
# simulator) and `make test` (the whole test suite, which .ci/run calls). Both set up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat VERSION)-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml VERSION
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/traiding run examples/dry-run.yaml --output out/dry-run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	scripts/test

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .coverage
