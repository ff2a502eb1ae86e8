#!/usr/bin/env bash
# The offline study's SAEs: those of `make saes` (both models, seeds 0 and 1), then the two diffing methods that
# need no matching (read by analyze.py when present, "not run" in findings.md when absent):
#   - the pair's crosscoder, seeds 0 and 1 (artifacts/sae/crosscoder_minilm_minilm_fin/layer_i/{demo,demo_seed1});
#   - the warm-started runs, both continued from the base SAE (artifacts/sae/minilm/layer_i/demo) with one seed,
#     so the same tokens in the same order: on the finance twin (minilm_fin/layer_i/demo_warm_domain) and, as
#     the control, on the base model itself (minilm/layer_i/demo_warm_control).
# Reuses finished SAEs and the activation cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LAYERS=0,1,2,3,4,5
START='sae.init_from=${paths.artifacts}/sae/minilm/layer_${layer}/demo'  # resolved by Hydra per job
$PY train.py --multirun experiment=demo model=minilm,minilm_fin layer=$LAYERS skip_if_done=true "$@"
$PY train.py --multirun experiment=demo model=minilm,minilm_fin layer=$LAYERS seed=1 tag=demo_seed1 skip_if_done=true "$@"
$PY train.py --multirun experiment=demo task=crosscoder layer=$LAYERS skip_if_done=true "$@"
$PY train.py --multirun experiment=demo task=crosscoder layer=$LAYERS seed=1 tag=demo_seed1 skip_if_done=true "$@"
$PY train.py --multirun experiment=demo model=minilm_fin layer=$LAYERS seed=1 tag=demo_warm_domain "$START" skip_if_done=true "$@"
$PY train.py --multirun experiment=demo model=minilm layer=$LAYERS seed=1 tag=demo_warm_control "$START" skip_if_done=true "$@"
