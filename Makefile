# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
export FAQ_CORPUS_DIR ?= corpus
export FAQ_INDEX_DIR  ?= var/index

AXE    := $(VENV)/npm-tools/node_modules/axe-core/axe.min.js

.PHONY: install index run test lint eval bench soak clean settings-doc lock browser-tools

# Exact versions (with hashes) from requirements.lock, the ones the reports were measured
# with; then the project itself without its dependencies. `make lock` refreshes the lock.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

index: $(STAMP)
	$(BIN)/faq-index update

run: index
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py 'service.app:create_app()'

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

eval: $(STAMP)
	$(BIN)/python -m eval.quality

# `make bench BENCH_ARGS=--quick` to try things; see `python bench/run.py --help`.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

settings-doc: $(STAMP)
	$(BIN)/python -m indexer.settings --write-readme README.md

# Regenerate requirements.lock from pyproject.toml's ranges (pip-tools in its own venv).
lock:
	test -x $(VENV)-lock/bin/pip-compile || ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet pip-tools)
	$(VENV)-lock/bin/pip-compile --quiet --extra test --extra bench --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# axe-core for the accessibility checks of the browser tests (tests/browser).
$(AXE):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/npm-tools axe-core@4
browser-tools: $(STAMP) $(AXE)

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis
