# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/monitor.yaml

.PHONY: run test lint check format clean bench-matching bench-feeds

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "monitor needs Python 3.11 or newer: run make with PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/monitor run --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/ruff format --check monitor tests benchmarks
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

check: $(STAMP)
	$(BIN)/monitor check --config $(CONFIG)

format: $(STAMP)
	$(BIN)/ruff format monitor tests benchmarks
	$(BIN)/ruff check --fix monitor tests benchmarks

# Matching throughput, compile time and memory of monitor's engine next to tantivy and `re`
# (about 9 minutes; BENCH_ARGS=--quick for a smoke run). tantivy comes with the dev extras.
bench-matching: $(STAMP)
	$(BIN)/python benchmarks/matching.py $(BENCH_ARGS)

# Feed fetching: first fetch and 304 revalidation of 10,000 local feeds by monitor, next to
# newsboat and rss2email when installed (apt-get install -y newsboat rss2email; a missing one is
# reported as not installed). BENCH_ARGS=--quick for a smoke run, --engines monitor for monitor only.
bench-feeds: $(STAMP)
	$(BIN)/python benchmarks/feeds.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
