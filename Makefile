# Two commands on a fresh machine:  make demo   |   make test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finsae-installed
export FINSAE_DATA_DIR ?= $(abspath ../shared/data)
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# two pytest workers, one test file each at a time (module and session fixtures stay in one process)
PYTEST_ARGS ?= -n 2 --dist loadfile
# sparsify's and SAELens' own loaders for the export test, beside .venv (tests/requirements-loaders.txt)
LOADERS := .test-libs

.PHONY: setup demo test bench finetune saes analyze labels backtest report clean

# (Re)install only when pyproject.toml changed (pip -qq: errors only; a machine's pip config naming absent local
# indexes otherwise prints a warning per package). CPU machines get the pinned CPU wheel of torch
# (an unpinned torch pulls a multi-GB CUDA build); GPU machines get the normal CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(PY) -m pip install -qq torch; \
	else \
		$(PY) -m pip install -qq torch==2.13.0; \
	fi
	$(PY) -m pip install -qq -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

$(LOADERS)/.installed: tests/requirements-loaders.txt | $(STAMP)
	$(PY) -m pip install -qq --no-deps --target $(LOADERS) -r tests/requirements-loaders.txt
	@touch $@

test: setup $(LOADERS)/.installed
	$(VENV)/bin/ruff check src tests bench *.py
	FINSAE_LOADER_LIBS=$(abspath $(LOADERS)) $(PY) -m pytest -q $(PYTEST_ARGS)

# The whole offline study, end to end, two one-thread jobs at a time (python -m finsae.demo --help); each job is
# skipped when its output exists. Logs: artifacts/report/logs/; times: artifacts/report/timing.json.
demo: setup
	$(PY) -m finsae.demo
	@echo
	@echo "demo done. Outputs:"
	@echo "  artifacts/models/minilm_fin/       the finance twin (metrics.json)"
	@echo "  artifacts/activations/             activation cache"
	@echo "  artifacts/sae/{minilm,minilm_fin}/ one SAE per layer (summary.json, sae.safetensors)"
	@echo "  artifacts/checkpoints/sae/         resumable training state of each SAE run"
	@echo "  outputs/, multirun/                per-run folders with offline W&B runs (wandb/offline-run-*)"
	@echo "  artifacts/analysis/minilm_fin/     feature comparison: layers.parquet, features.parquet, findings.md, plots/"
	@echo "  artifacts/labels/minilm_fin/       labels.parquet, per_layer.csv, summary.json (labels scored vs controls)"
	@echo "  artifacts/backtest/minilm_fin/     predictions, positions, returns, metrics.csv, benchmark_stocknet.json, tearsheets, summary.json"
	@echo "  artifacts/report/index.html        the study report (one self-contained page); docs/results/*.md"
	@echo "  artifacts/report/sae_table.md      SAE tables and plots beside it (sae_table.csv, sae_layers.png, ...)"
	@echo "  artifacts/report/timing.json       how long each stage took (logs: artifacts/report/logs/)"

finetune: setup
	$(PY) train.py task=finetune finetune.skip_if_present=true

# The demo SAEs (both models' six layers, seed repeats at every layer, crosscoders, warm starts) two at a time, after the fine-tune if it is missing.
saes: setup
	$(PY) -m finsae.demo --only SAEs

# Feature comparison of the pair, every layer with SAEs for both models (artifacts/analysis/minilm_fin/).
analyze: setup
	$(PY) analyze.py

# Labels of the financial latents (offline: lexical explainer + embedding scorer) scored against controls.
labels: setup
	$(PY) label.py skip_if_done=true

# Walk-forward LightGBM + StockNet benchmark + backtest after costs (artifacts/backtest/minilm_fin/).
# The first run encodes all StockNet tweets through both models (~1.5 h on 2 cores); later runs reuse the cache.
backtest: setup
	OMP_NUM_THREADS=1 $(PY) backtest.py skip_if_done=true

# The study report (artifacts/report/index.html, with the SAE tables and plots beside it), docs/results/*.md and
# README's headline table, from the artifacts.
report: setup
	$(PY) -m finsae.report

# sparsify is a bench-only comparison: installed without its dependency pins (it would pull another torch).
bench: setup
	$(PY) -m pip install -qq --no-deps eai-sparsify==1.3.3 einops natsort simple-parsing docstring-parser \
		schedulefree accelerate psutil datasets dill multiprocess
	$(PY) bench/extract.py
	$(PY) bench/sae_step.py
	$(PY) bench/analyze_layer.py offline
	$(PY) bench/analyze_layer.py paper
	$(PY) bench/backtest_stage.py

clean:
	rm -rf outputs multirun .pytest_cache
