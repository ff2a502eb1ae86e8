#!/usr/bin/env bash
# The offline study's SAEs, as `make saes` trains them: both models at every layer with seed repeats, the pair's
# crosscoder (seeds 0, 1) and the warm starts from the base SAE (domain, control). The list of runs lives in one
# place, src/finsae/demo/plan.py (`python -m finsae.demo --only SAEs --dry-run` prints it); this script runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec $PY -m finsae.demo --only SAEs "$@"
