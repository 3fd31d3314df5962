# The two commands the README promises: `make run` (a local dry run against the exchange
# simulator) and `make test` (the whole test suite, which .ci/run calls). Both set up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat VERSION)-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup tools run test lint image e2e soak release clean

$(STAMP): pyproject.toml VERSION
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/traiding run examples/dry-run.yaml --output out/dry-run

# The clusters and the checks' tools (kube-apiserver, etcd, kubelet, ..., helm, actionlint, shellcheck),
# built once per machine into ~/.cache/ai-traiding/bin (see docs/cluster.md); prometheus and amtool
# for the observability tests (docs/observability.md).
tools:
	scripts/cluster install
	scripts/observability-tools >/dev/null

# The operator image ai-traiding:$(VERSION) (docs/deploy.md); BASE_IMAGE=python:3.11-slim-bookworm where a
# registry can be reached, else the base image built here with debootstrap (the default).
image: setup
	$(BIN)/python scripts/image operator

# The chart on real Pods: image, real-node cluster, helm install/upgrade/uninstall, a dry run, the nightly Job.
e2e: setup tools
	$(BIN)/python scripts/e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy scripts/cluster
	$(BIN)/mypy scripts/image
	$(BIN)/mypy scripts/e2e
	$(BIN)/mypy scripts/observability-tools

# Everything CI checks: lint and types, the test suite, the up/down soak of both clusters, the e2e.
test: setup tools lint
	scripts/test
	$(MAKE) soak
	$(MAKE) e2e

# 30 cycles each of `scripts/cluster up` / `down`, plain and --real-node (AI_TRAIDING_SOAK_CYCLES=N).
soak: setup tools
	$(BIN)/pytest -m soak tests/soak -p no:cacheprovider -q -s

# A release: `make release PART=patch` (or minor, major) bumps VERSION and everything that states it, dates the
# CHANGELOG's Unreleased section, writes RELEASE_NOTES.md, commits and tags vX.Y.Z (.bumpversion.toml).
release: setup
	@test -n "$(PART)" || { echo "usage: make release PART=patch|minor|major"; exit 2; }
	$(BIN)/bump-my-version bump --config-file .bumpversion.toml $(PART)

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .coverage
