# The two commands the README promises: `make run` (a local dry run against the exchange
# simulator) and `make test` (the whole test suite, which .ci/run calls). Both set up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat VERSION)-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup tools run test lint clean

$(STAMP): pyproject.toml VERSION
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/traiding run examples/dry-run.yaml --output out/dry-run

# The control plane and the checks' tools (kube-apiserver, etcd, ..., helm, actionlint, promtool),
# built once per machine into ~/.cache/ai-traiding/bin (see docs/cluster.md); prometheus and amtool
# for the observability tests (docs/observability.md).
tools:
	scripts/cluster install
	scripts/observability-tools >/dev/null

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup tools lint
	scripts/test

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .coverage
