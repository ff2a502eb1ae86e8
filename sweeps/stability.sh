#!/usr/bin/env bash
# Seed-stability sweep of the demo SAE setting (issue: "SAEs stable enough to compare").
# Trains pairs of SAEs that differ only in their seed (0 and 1) on the *training* mix of one MiniLM layer, for a
# grid of dictionary sizes, token budgets, k and lr; `python -m finsae.analysis.stability` then matches each pair
# one-to-one and writes the seed ceiling beside held-out FVU and dead share (artifacts/report/stability.*).
# Nothing here reads held-out or evaluation-period text: the SAE corpus excludes both by construction.
# Two one-thread jobs side by side (faster than one two-thread job on these 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
JOBS=${JOBS:-2}
# model layer expansion k tokens lr seed   (lr "auto": finsae.sae.default_lr)
GRID=${GRID:-sweeps/stability_grid.txt}
run() {
  read -r model layer e k t lr seed <<<"$1"
  tag="stab_e${e}_k${k}_t${t}_lr${lr}_s${seed}"
  # "auto" is stated as null: experiment=demo may pin its own lr, and the grid row must not inherit it
  if [[ "$lr" == auto ]]; then extra=("sae.lr=null"); else extra=("sae.lr=$lr"); fi
  OMP_NUM_THREADS=1 $PY train.py experiment=demo model="$model" layer="$layer" sae.expansion_factor="$e" \
    sae.k="$k" sae.tokens="$t" seed="$seed" tag="$tag" downstream_docs=0 skip_if_done=true \
    trainer.progress_bar=false "${extra[@]}" >/dev/null 2>"outputs/stability_${model}_l${layer}_${tag}.log" \
    && echo "done $model $layer $tag" || echo "FAILED $model $layer $tag (see outputs/stability_${model}_l${layer}_${tag}.log)"
}
export -f run
export PY
mkdir -p outputs
grep -v '^#' "$GRID" | grep -v '^\s*$' | xargs -P "$JOBS" -I{} bash -c 'run "$@"' _ {}
