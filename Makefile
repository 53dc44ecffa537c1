# picscore — developer commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ROOT ?= var/demo-root

.PHONY: install run serve test bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/node/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

## Build the demo bucket, serve it, audit it with `picscore run` into var/demo-results.parquet.
run: install
	$(BIN)/picscore demo --root $(DEMO_ROOT)

## Serve the demo bucket on 127.0.0.1:9000 (export OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET first).
serve: install
	$(BIN)/python -m worker.demo.build $(DEMO_ROOT) > /dev/null
	$(BIN)/picscore serve --root $(DEMO_ROOT)

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_scorer.py
	$(BIN)/python benchmarks/bench_worker.py

lint: install
	$(BIN)/ruff check worker tests benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache tests/node/node_modules
