# One entry point for developers and CI. `make setup` then `make test` on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACKS := staging prod

.PHONY: setup test check fmt lint types synth golden bench demo docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# The suite runs on both cores; tests that share a moto server get their own per worker.
test: setup
	$(BIN)/python -m pytest -n 2 -q

fmt: setup
	$(BIN)/ruff format infra scripts tests policy bench devtools

lint: setup
	$(BIN)/ruff format --check infra scripts tests policy bench devtools
	$(BIN)/ruff check infra scripts tests policy bench devtools

types: setup
	$(BIN)/mypy infra scripts devtools

check: lint types test

# What every committed stack declares, offline: build/<stack>.json, .md and .mmd.
synth: setup
	$(BIN)/python -m scripts.synth --all-stacks --out-dir build

# After an intended change to the program or a stack file: regenerate the snapshot test's files.
golden: setup
	$(BIN)/python -m scripts.synth --all-stacks --out-dir tests/golden

# Every bench/bench_*.py prints its own medians against its stated target.
bench: setup
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# README's generated blocks: config reference from Pulumi.yaml, architecture from synth.
docs: setup
	$(BIN)/python -m devtools.gen_docs

# The whole thing against an emulated AWS (a local moto server), as an operator would run it.
demo: setup
	$(BIN)/python -m devtools.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
