#!/usr/bin/env bash
# Learning-rate sweep at the demo budget (MiniLM layer 3, 12,288 latents, k=32, ~1M tokens).
# Held-out FVU per lr ends up in artifacts/sae/minilm/layer_3/lr_*/summary.json; `python -m finsae.glue.report`
# tabulates them. Never tune on the evaluation period: the SAE corpus excludes it by construction.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for lr in 2.3e-4 5e-4 1e-3 2e-3 4e-3; do
  $PY train.py experiment=demo model=minilm layer=3 sae.lr=$lr tag=lr_$lr downstream_docs=0 skip_if_done=true "$@"
done
