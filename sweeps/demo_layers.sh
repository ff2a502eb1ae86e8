#!/usr/bin/env bash
# The offline study's SAEs (same as `make saes`). Reuses finished SAEs and the activation cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY train.py --multirun experiment=demo model=minilm,minilm_fin layer=0,1,2,3,4,5 skip_if_done=true "$@"
$PY train.py --multirun experiment=demo model=minilm,minilm_fin layer=0,1,2,3,4,5 seed=1 tag=demo_seed1 skip_if_done=true "$@"
