# The README's commands. `make demo` and `make test` each set everything up from scratch on a fresh
# Debian machine with Python 3.11+; nothing else needs installing by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
BROWSER = $(VENV)/.chromium

.PHONY: demo test check lint types fmt bench demo-data train-sentiment eval-sentiment clean

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

bench: $(STAMP)  ## speed figures (never run in CI)
	$(BIN)/python -m tools.bench

demo-data: $(STAMP)  ## rebuild listener/data/demo_mentions.jsonl (seeded)
	$(BIN)/python tools/make_demo_data.py

# The labelled data of ../shared/data/sentiment (research terms: see rules/models/MODEL_CARD.md).
SENTIMENT_DATA ?= ../shared/data/sentiment
SENTIMENT_TERMS = Research data: SemEval 2013-2016 and TweetEval tweets (research use), EVALITA 2016 SENTIPOLC \
  (CC BY-NC-SA 3.0 IT: non-commercial, share-alike), XLM-T Italian. Retrain on your own labels for other use.

train-sentiment: $(STAMP)  ## rebuild rules/models/sentiment-*.npz (seeded; ~15 min, embeddings cached in var/cache)
	$(BIN)/passaparola sentiment train --mode both --cap 6000 --out rules/models --cache var/cache/e5.npz \
	  --terms "$(SENTIMENT_TERMS)" \
	  --data en=$(SENTIMENT_DATA)/en_train.tsv \
	  --data it=$(SENTIMENT_DATA)/it_sentipolc_train.tsv --data it=$(SENTIMENT_DATA)/it_train.tsv
	$(MAKE) eval-sentiment EVAL_FLAGS=--update-card

eval-sentiment: $(STAMP)  ## macro-F1 / macro-recall per language on held-out sets, VADER beside; var/eval-sentiment.json
	$(BIN)/passaparola sentiment eval --mode both --model-dir rules/models --cache var/cache/e5.npz \
	  --json var/eval-sentiment.json $(EVAL_FLAGS) \
	  --data en=$(SENTIMENT_DATA)/en_val.tsv --data it=$(SENTIMENT_DATA)/it_val.tsv

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
