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

.PHONY: setup lock demo test bench gpu-check finetune saes analyze labels backtest report clean

# Installs come from a lock file of exact versions (requirements-cpu.lock, or requirements-cuda.lock where nvidia-smi sees a
# GPU): a fresh clone next month installs what the suite passed with today. The CPU lock pins torch's CPU wheel
# (2.13.0+cpu: pip's find-links on these machines; elsewhere set PIP_EXTRA_INDEX_URL to PyTorch's CPU index); the
# CUDA lock pins the same torch from PyPI. pip -qq: errors only (a machine's pip config naming absent local
# indexes otherwise prints a warning per package). `make lock` is the one way versions change.
PIP_VERSION := 26.3
LOCK ?= requirements-$(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then echo cuda; else echo cpu; fi).lock
$(STAMP): pyproject.toml requirements-cpu.lock requirements-cuda.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq pip==$(PIP_VERSION)
	$(PY) -m pip install -qq -r $(LOCK)
	$(PY) -m pip install -qq --no-deps -e .
	@echo "$(LOCK)" > $(STAMP)

setup: $(STAMP)

$(LOADERS)/.installed: tests/requirements-loaders.txt tests/requirements-openai-compat.txt | $(STAMP)
	$(PY) -m pip install -qq --no-deps --target $(LOADERS) -r tests/requirements-loaders.txt
	$(PY) -m pip install -qq --no-deps --target $(LOADERS)/openai-compat -r tests/requirements-openai-compat.txt
	@touch $@

test: setup $(LOADERS)/.installed
	$(VENV)/bin/ruff check src tests bench *.py
	FINSAE_LOADER_LIBS=$(abspath $(LOADERS)) FINSAE_LOCK=$(LOCK) $(PY) -m pytest -q $(PYTEST_ARGS)

# Re-resolve both lock files to the newest releases pyproject.toml's ranges admit (uv, Python 3.11, Linux x86-64),
# install the new CPU lock and run the suite: commit the locks only when it passes.
LOCK_ARGS := --extra dev --extra cluster --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --no-annotate -q
TORCH_VERSION := 2.13.0
# where the CPU wheel of torch comes from: pip's find-links folder where the machine has one, else PyTorch's CPU index
TORCH_CPU_SOURCE ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu)
lock: setup
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_ARGS) $(TORCH_CPU_SOURCE) --index-strategy unsafe-best-match \
		--override <(echo 'torch==$(TORCH_VERSION)+cpu') -o requirements-cpu.lock
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_ARGS) --override <(echo 'torch==$(TORCH_VERSION)') -o requirements-cuda.lock
	$(MAKE) test

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

# sparsify (the SAE step's comparison) comes from the pinned loaders folder the tests use (tests/requirements-loaders.txt).
bench: setup $(LOADERS)/.installed
	export PYTHONPATH=$(abspath $(LOADERS)); \
	$(PY) bench/extract.py && $(PY) bench/sae_step.py && $(PY) bench/analyze_layer.py offline && \
	$(PY) bench/analyze_layer.py paper && $(PY) bench/backtest_stage.py

# The GPU check (bench/gpu_check.py): paper-shape SAE and crosscoder steps vs sparsify, a Lightning fit, extraction
# of a bert-base-shaped model, the paper study's predicted wall time; on a CPU, tiny shapes and what needs a GPU.
gpu-check: setup $(LOADERS)/.installed
	PYTHONPATH=$(abspath $(LOADERS)) $(PY) bench/gpu_check.py

clean:
	rm -rf outputs multirun .pytest_cache
