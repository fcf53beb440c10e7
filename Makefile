# One entry point for developers and CI. `make setup` then `make test` on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACKS := staging prod

.PHONY: setup postgres test check fmt lint types synth golden bench demo docs mermaid clean

setup: $(VENV)/.installed

# The checkout itself is installed editable, so `.venv/bin/dbplatform` runs from any folder.
# The data tests need a PostgreSQL server binary (initdb, pg_ctl): Debian's package, installed
# when the machine has none.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3 setuptools==80.9.0
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(MAKE) --no-print-directory postgres
	touch $@

postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; \
	then echo "postgres: server binaries present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else echo "postgres: the data tests need PostgreSQL's server binaries (initdb, postgres):" \
	  "install your system's postgresql server package, then re-run make setup" >&2; exit 1; fi

# Three workers on two cores: a worker waiting on its moto server, PostgreSQL or a child
# process leaves its core to another (the same commit back to back: -n 2 140 s wall, 227 s
# CPU; -n 3 110 s, 211 s; docs/speed.md). Each worker has its own moto server and PostgreSQL.
# Bytecode is written (PYTHONDONTWRITEBYTECODE emptied for the run) so pytest's rewritten test
# modules and the project's compiled modules are reused by the other workers and the commands'
# child processes instead of compiled again by each (__pycache__ is ignored by git).
test: setup
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 3 -q

fmt: setup
	$(BIN)/ruff format infra scripts tests policy bench devtools dbplatform

lint: setup
	$(BIN)/ruff format --check infra scripts tests policy bench devtools dbplatform
	$(BIN)/ruff check infra scripts tests policy bench devtools dbplatform

types: setup
	$(BIN)/mypy infra scripts devtools dbplatform policy

check: lint types test

# What every committed stack declares, offline: build/<stack>.json, .md and .mmd.
synth: setup
	$(BIN)/python -m scripts.synth --all-stacks --out-dir build

# After an intended change to the program or a stack file: regenerate the snapshot test's files.
golden: setup
	$(BIN)/python -m scripts.synth --all-stacks --out-dir tests/golden

# Speed as ratios to a floor, measured in one run (bench/bench_ratios.py: each figure against its
# target, exit 1 when missed), then the informational medians and the CDK comparison (skipped
# with its reason without node/npm).
bench: setup
	@for f in bench/bench_ratios.py bench/bench_synth.py bench/bench_preview_report.py \
	  bench/bench_cdk.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# Generated blocks of README.md and docs/: config reference from Pulumi.yaml, pictures from the
# manifest, the workflows and the blue/green cycle (devtools/gen_docs.py).
docs: setup
	$(BIN)/python -m devtools.gen_docs

# Mermaid's own parser for tests/test_pictures.py (needs node and npm; the test skips without).
MERMAID_DIR := build/mermaid
mermaid:
	mkdir -p $(MERMAID_DIR)
	npm install --prefix $(MERMAID_DIR) --no-audit --no-fund --silent mermaid@11.17.2 jsdom@25.0.1

# The whole thing against an emulated AWS (a local moto server), as an operator would run it.
demo: setup
	$(BIN)/python -m devtools.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
