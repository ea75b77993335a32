# The README's commands. `make demo` and `make test` each set everything up from scratch on a fresh
# Debian machine with Python 3.11+; nothing else needs installing by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test check lint types fmt bench demo-data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { echo "venv missing: installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## run the real daemon on the bundled demo data (no credentials, no network)
	mkdir -p var
	$(BIN)/passaparola demo --db var/demo.db --duration 15

test: $(STAMP)  ## the whole test suite
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

check: lint types test  ## lint + types + tests

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## speed figures (never run in CI)
	$(BIN)/python -m tools.bench

demo-data: $(STAMP)  ## rebuild listener/data/demo_mentions.jsonl (seeded)
	$(BIN)/python tools/make_demo_data.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
