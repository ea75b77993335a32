# The README's commands. `make demo` and `make test` each set everything up from scratch on a fresh
# Debian machine with Python 3.11+; nothing else needs installing by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
BROWSER = $(VENV)/.chromium

.PHONY: demo test check lint types fmt bench docs demo-data train-sentiment train-sentiment-research eval-sentiment clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { echo "venv missing: installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads a browser here).
$(BROWSER):
	command -v chromium >/dev/null || { echo "installing Debian's chromium for the dashboard's browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	mkdir -p $(VENV) && touch $(BROWSER)

demo: $(STAMP)  ## run the real daemon on the bundled demo data (no credentials, no network)
	mkdir -p var
	$(BIN)/passaparola demo --db var/demo.db --duration 15

test: $(STAMP) $(BROWSER)  ## the whole test suite
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

docs: $(STAMP)  ## rewrite the generated parts of docs/ (every command's --help in docs/cli.md)
	$(BIN)/cog -r -I . docs/cli.md

bench: $(STAMP)  ## speed figures (never run in CI)
	$(BIN)/python -m tools.bench
	$(BIN)/python -m tools.bench_backfill --rows 200000

screenshots: $(STAMP) $(BROWSER)  ## the dashboard's two working days as PNGs in var/screenshots/ (it, en; 390 and 1366 px)
	$(BIN)/python -m tools.screenshots

demo-data: $(STAMP)  ## rebuild listener/data/demo_mentions.jsonl (seeded)
	$(BIN)/python tools/make_demo_data.py

# The default model trains on the project's own customer-care corpus alone (rules/care_corpus, MIT): weights a
# business may use. The research sets of ../shared/data/sentiment are only scored (eval-sentiment), or trained on
# in an opt-in model a user builds on their own machine (train-sentiment-research).
SENTIMENT_DATA ?= ../shared/data/sentiment
RESEARCH_TERMS = Research data: SemEval 2013-2016 and TweetEval tweets (research use), EVALITA 2016 SENTIPOLC \
  (CC BY-NC-SA 3.0 IT: non-commercial, share-alike), XLM-T Italian. Not for commercial use.
CORPUS_TERMS = The passaparola customer-care corpus (rules/care_corpus), MIT: commercial use and redistribution allowed.

train-sentiment: $(STAMP)  ## rebuild rules/models/sentiment-*.npz from the corpus (seeded; ~10 min, embeddings cached in var/cache)
	$(BIN)/passaparola sentiment train --out rules/models --cache var/cache/e5-care.npz --terms "$(CORPUS_TERMS)"
	$(MAKE) eval-sentiment EVAL_FLAGS=--update-card

eval-sentiment: $(STAMP)  ## care test split, research validation sets and VADER, per language and mode; var/eval-sentiment.json
	$(BIN)/passaparola sentiment eval --mode both --model-dir rules/models --json var/eval-sentiment.json $(EVAL_FLAGS) \
	  --data en=$(SENTIMENT_DATA)/en_val.tsv --data it=$(SENTIMENT_DATA)/it_val.tsv

train-sentiment-research: $(STAMP)  ## opt-in: a model trained on the research tweets too, in var/models-research (non-commercial)
	$(BIN)/passaparola sentiment train --out var/models-research --cache var/cache/e5-research.npz \
	  --terms "$(RESEARCH_TERMS) Plus: $(CORPUS_TERMS)" \
	  --data en=$(SENTIMENT_DATA)/en_train.tsv \
	  --data it=$(SENTIMENT_DATA)/it_sentipolc_train.tsv --data it=$(SENTIMENT_DATA)/it_train.tsv
	@echo 'use it with [analysis] model_dir = "var/models-research" (research and non-commercial terms apply)'

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
