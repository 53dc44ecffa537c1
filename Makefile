# picscore — developer commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ROOT ?= var/demo-root
BIQ2021 ?= /data/BIQ2021
# A finetune.py output folder for `make train` (empty: the CPU route from the shipped backbone).
FINETUNED ?=
# Extra options for `make train` / `make train-holdout`, e.g. "--accurate-crops 7 --accurate-whole-side 320".
TRAIN_ARGS ?=
# Extra options for `make finetune`, e.g. "--whole-side 320 --ema 0.998".
FINETUNE_ARGS ?=
# A checkout of github.com/aliyun/alibabacloud-oss-python-sdk-v2 for `make conformance` (nothing is fetched).
SDK_V2 ?=

.PHONY: install test-deps run serve test test-fast bench bench-actions bench-thumbnails bench-report bench-multipart report-screenshot bench-throttle bench-soak bench-quality train train-holdout finetune image lint conformance clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	tests/system-packages.sh run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## What the test suite needs beyond Python: system packages (installed with apt-get as root, else
## the one command to run is printed) and the Node ali-oss package for tests/node.
test-deps: install tests/node/node_modules/.installed

tests/node/node_modules/.installed: tests/node/package-lock.json
	tests/system-packages.sh test
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

## Build the demo bucket, serve it, audit it with `picscore run` into var/demo-results.parquet.
run: install
	$(BIN)/picscore demo --root $(DEMO_ROOT)

## Serve the demo bucket on 127.0.0.1:9000 (export OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET first).
serve: install
	$(BIN)/python -m worker.demo.build $(DEMO_ROOT) > /dev/null
	$(BIN)/picscore serve --root $(DEMO_ROOT)

## Everything, on every core (pytest-xdist; one test file per worker, so a file's server starts once).
test: test-deps
	$(BIN)/pytest -q -n auto --dist loadfile

## The fast loop: unit tests only (no integration or slow marks), on every core, test by test.
test-fast: install
	$(BIN)/pytest -q -n auto --dist load -m "not integration and not slow"

bench: install
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_scorer.py
	$(BIN)/python benchmarks/bench_worker.py
	$(BIN)/python benchmarks/bench_throttle.py
	$(BIN)/python benchmarks/bench_actions.py
	$(BIN)/python benchmarks/bench_thumbnails.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_multipart.py

## picscore run against a server that throttles (1 and 2 scoring processes; concurrency 16/64/256).
bench-throttle: install
	$(BIN)/python benchmarks/bench_throttle.py

## picscore filter/covers over 1,000,000 synthetic result rows; the act phase against a real server.
bench-actions: install
	$(BIN)/python benchmarks/bench_actions.py

## Thumbnails: videos per minute and calls billed per video, local and OSS scoring (issue 18).
bench-thumbnails: install
	$(BIN)/python benchmarks/bench_thumbnails.py

## picscore report over 1,000,000 synthetic result rows, alone and with --compare: time and peak RSS.
bench-report: install
	$(BIN)/python benchmarks/bench_report.py

## 200 MB through the SDK's Uploader into picscore serve, the server killed mid-upload and restarted,
## the upload resumed: byte-identical, multipart ETag, server RSS.
bench-multipart: install
	$(BIN)/python benchmarks/bench_multipart.py

## The README's screenshot of the demo's report, made by the headless Chromium the tests use.
report-screenshot: run
	$(BIN)/python -m tests.browser.screenshot var/demo-report.html tests/browser/report-screenshot.jpg

## 10 minutes of mixed traffic against picscore serve: RSS, open fds and errors at start and end.
bench-soak: install
	$(BIN)/python benchmarks/bench_soak.py

## Rebuild the quality model from BIQ2021 (not shipped; see worker/quality/model/MODEL_CARD.md):
##   git clone https://github.com/nisarahmedrana/BIQ2021 /data/BIQ2021 && make train BIQ2021=/data/BIQ2021
## With a fine-tuned backbone: make finetune (a CUDA GPU), then make train FINETUNED=var/finetune.
train: install
	$(BIN)/pip install --quiet -e '.[train,dev]'
	$(BIN)/python -m worker.quality.training.train --biq "$(BIQ2021)" --install \
		$(if $(FINETUNED),--finetuned "$(FINETUNED)") $(TRAIN_ARGS)

## Try views or settings without looking at test: fit on 9,000 train photos, score the 1,000 fine-tuning
## held out (nothing is installed). make train-holdout BIQ2021=/data/BIQ2021 TRAIN_ARGS="--accurate-crops 7"
train-holdout: install
	$(BIN)/pip install --quiet -e '.[train,dev]'
	$(BIN)/python -m worker.quality.training.train --biq "$(BIQ2021)" --holdout --work var/train-holdout \
		$(if $(FINETUNED),--finetuned "$(FINETUNED)") $(TRAIN_ARGS)

## Fine-tune the backbone on BIQ2021 train (needs a CUDA build of torch and a GPU; ~7 min on an H100).
finetune: install
	$(BIN)/pip install --quiet -e '.[train,dev]'
	$(BIN)/python -m worker.quality.training.finetune --biq "$(BIQ2021)" --out var/finetune $(FINETUNE_ARGS)

## SRCC/PLCC on BIQ2021's test split (shipped model, first scorer, variants) and ms per image on one core.
bench-quality: install
	$(BIN)/python benchmarks/bench_quality.py --biq "$(BIQ2021)"

## The container image (deploy/Dockerfile; needs Docker with BuildKit).
image:
	docker build -f deploy/Dockerfile -t picscore:$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) .

## The official Python SDK v2's own integration suite against a fresh picscore serve (SDK_V2: a checkout of
## github.com/aliyun/alibabacloud-oss-python-sdk-v2; nothing is fetched): passes over in-scope tests.
conformance: install
	$(BIN)/python tests/conformance/run_sdk_v2.py --sdk "$(SDK_V2)"

lint: install
	$(BIN)/ruff check worker tests benchmarks deploy

clean:
	rm -rf $(VENV) var .pytest_cache tests/node/node_modules
