# imgsearch — `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# GX and Prefect phone home unless told not to; this machine has no internet.
export GX_ANALYTICS_ENABLED := False
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint style typecheck check validate-dev bench deployments worker-smoke screenshots

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# pip (not uv): torch and torchvision install from this machine's local wheel store.
	# compat mode puts the repo on sys.path, so a package added later (say webapp/) needs no reinstall
	$(BIN)/pip install -e '.[test,bench,dev]' --config-settings editable_mode=compat
	touch $@

install: $(BIN)/.installed ## create the virtual environment and install the project

demo: install ## run the main job on the embedded sample dataset
	$(BIN)/imgsearch demo

test: install ## run the whole test suite
	$(BIN)/python -m pytest

lint: install ## ruff lint and format check (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: install ## format the code and apply ruff's safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy on tasks/, flows/ and webapp/
	$(BIN)/mypy

check: lint typecheck test ## everything CI runs: lint, types, tests

test-fast: install ## run the tests without integration and real-data tests
	$(BIN)/python -m pytest -m "not integration and not realdata"

validate-dev: install ## validate ../shared/data/practicum-dev
	$(BIN)/imgsearch validate ../shared/data/practicum-dev

bench: install ## run the benchmarks on ../shared/data/practicum-dev (writes bench/results/)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

deployments: install ## serve the train, ingest-ratings, retrain and backfill deployments (DATA_DIR=./data, else the sample)
	$(BIN)/python deployments/serve.py $(if $(DATA_DIR),--data-dir $(DATA_DIR))

worker-smoke: install ## deploy prefect.yaml to a temporary server's process pool, run a backfill through a worker
	$(BIN)/python deployments/worker_smoke.py

screenshots: install ## search-page, /score, /docs, Data Docs, training- and EDA-report screenshots in docs/screenshots/ (headless Chromium; a sample workspace in /tmp)
	$(BIN)/python docs/make_screenshots.py
